"""The hazmat layer: the only package in burnerkit that imports ``cryptography``.

Protocol code asks for ``crypto.aead.AeadKey`` or ``crypto.kdf.chain_step``, never
for ``AESGCM`` or ``HMAC`` directly, so every primitive's use is reviewed here and an
import contract keeps it so. The building blocks are docs/protocol.md §2-§3.
"""
