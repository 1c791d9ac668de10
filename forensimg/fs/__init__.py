"""File-system access inside images (Sleuth Kit through pytsk3)."""
