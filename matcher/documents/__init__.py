"""Documents the base hands out (XLSX/CSV), all through the one formula-safe writer."""
