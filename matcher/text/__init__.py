"""Text: normalisation, segmentation, scripts (CJK and Latin), the one redaction of personal data."""
