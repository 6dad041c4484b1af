"""``burner chat``: the terminal chat UI (Textual), a face over :class:`~burnerkit.app.messenger.Messenger`.

Layout, after Textual's own habits: :mod:`.app` wires the screens and keys and owns the
unlocked messenger; each screen lives in its own module under :mod:`.screens`; the
widgets that draw contacts, a conversation, the status line and a QR code are under
:mod:`.widgets`; :mod:`.live` holds the receive loop's worker and the messages it posts
up to the main screen ("attributes down, messages up"); :mod:`.words` holds the text
people read (alert advice, durations). Nothing here imports the relay, vault or protocol
packages: every action goes through the Messenger, and every ``BurnerError`` it raises
becomes a notification, never a traceback.
"""
