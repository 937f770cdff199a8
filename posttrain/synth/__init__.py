"""The instruction-data builder: seeds -> teacher generations (self-instruct, evol-instruct)
-> filters -> MinHash and embedding dedup -> contamination check -> JSONL + quality report.
Data flows one way through build.py; nothing here trains."""
