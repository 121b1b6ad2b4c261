"""Sandboxes for model-written code: Docker and bubblewrap backends, warm pool, offline images, remote service."""
