"""Read-only FUSE mounts of images."""
