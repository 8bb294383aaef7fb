"""`stylenorm ablate`: train one model per (norm, batch size, seed) and check the seeds' claims."""
