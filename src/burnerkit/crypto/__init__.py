"""The hazmat layer: the only package in burnerkit that imports ``cryptography``.

Protocol code asks for ``crypto.aead.AeadKey`` or ``crypto.kdf.chain_step``, never
for ``AESGCM`` or ``HMAC`` directly.
"""
