"""Image ingestion, one path for both pipelines: decode once, apply EXIF orientation, convert every
pixel format properly, and send the model the picture a person sees, at the frame its processor
expects, with boxes coming back in the frame the seed records (`decode`, `frames`, `prepare`)."""
