"""RESULTs: judge what a CELL's container left, read and write records and run.json, typed RUN data."""
