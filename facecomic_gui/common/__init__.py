"""What both tabs share: the one module that creates threads (``worker``), Qt-free observer events
and job protocol (``observable``), one-sentence errors, dialogs, thumbnails, remembered settings and
small widgets. Nothing here imports a tab."""
