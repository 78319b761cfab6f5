"""The Runs tab: every saved run in the runs folder, listed in the background; reopen, compare,
rename, delete, or use one for predictions. ``session`` holds the state without Qt."""
