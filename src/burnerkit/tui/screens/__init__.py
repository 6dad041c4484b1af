"""The chat UI's screens, one module each: unlock, main, and the modal windows."""
