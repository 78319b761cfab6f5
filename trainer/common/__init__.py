"""What every part of the trainer shares: settings dataclasses, errors, cancel tokens, events,
progress, atomic writes and where bundled assets live. Nothing here imports torch."""
