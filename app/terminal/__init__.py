"""Terminal clients of the service (`python -m app orders | book | account`, with
`watch`/`submit` in app/watch.py): a small HTTP/websocket client, display rounding and
the views."""
