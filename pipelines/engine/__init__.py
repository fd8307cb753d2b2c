"""The engine every pipeline runs on: planning (pure), the session (lock and run events), the
worker pool, seeding and the image cache, the step executor, retries and pacing, the tracker.
`runner.run_pipeline` wires them."""
