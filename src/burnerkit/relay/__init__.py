"""The relay: an unlinkable store-and-forward queue server, its client and its sans-IO protocol."""
