"""Text: normalisation, segmentation, the one redaction of personal data."""
