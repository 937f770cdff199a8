"""The blind arena: the store (one SQLite file), campaigns, battle allocation, rater quality,
ladders (Bradley-Terry, style control), preference pairs and their export, open battles, prompt
hygiene, the closed loop (votes -> a training round -> the next campaign) and the Gradio UI.
`blindarena.operations` is the front door the command line and the app both call."""
