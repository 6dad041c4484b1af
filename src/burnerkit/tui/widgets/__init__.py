"""The main screen's widgets: contacts, a conversation, the status line, a QR code."""
