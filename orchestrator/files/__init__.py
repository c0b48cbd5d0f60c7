"""Files: what the orchestrator reads from elsewhere and writes for itself.

Every file another party may have made (a MATRIX, a RESULT, a RUN folder, a bundle, a
shard, a model store) is read through this package: bounded, strict, never following a
link out of its root (``reading``, ``beneath``, ``archive``); every file the orchestrator
writes is written atomically beneath its root (``writing``) under a lock that neither
truncates nor follows a link (``locking``); names taken from such files are checked to be
plain path components (``names``); text that reaches a terminal or a spreadsheet is
neutralised (``terminal``). The threat model is in docs/hostile-inputs.md.
"""
