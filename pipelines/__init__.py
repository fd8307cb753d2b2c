"""The pipelines (one package each: `grounding`, `referring`), what they share (the contract,
the answer reader, value coercion, input reading, record building) and the engine they run on."""
