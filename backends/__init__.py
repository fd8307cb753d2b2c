"""VLM backends: one module each, behind the `Backend` protocol of `auto_label.backends.base`,
registered through the `auto_label.backends` entry-point group (see `registry`)."""
