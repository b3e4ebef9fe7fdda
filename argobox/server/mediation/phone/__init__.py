"""Deciding from the phone: Approve and Deny buttons on Home Assistant pushes, heard back over its WebSocket API.

`codes` makes and checks the one-time codes in the buttons' action keys, `push` builds the Home Assistant push,
`press` turns one button press into a decision or an audited refusal, and `listening` says what a listener needs
and records whether it is connected. What the store remembers of presses is `argobox.server.store.phone`; the
long-lived listener itself is `argobox.server.transport.phone_listener`.
"""
