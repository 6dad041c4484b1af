"""The relay server: asyncio over WebSocket, never able to decrypt what it carries."""
