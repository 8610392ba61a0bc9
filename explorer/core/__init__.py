"""The pipeline: Settings -> plan -> the engine (encode, prefill with pruning, decode) -> Record; compare runs
every method of a request on one input and attaches the diagnostics."""
