"""The two pipelines, their prompts, parsers and the step runner they share."""
