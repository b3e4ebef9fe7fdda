"""Deciding from the phone: Approve and Deny buttons on Home Assistant pushes, heard back over its WebSocket API.

`codes` makes and checks the one-time codes in the buttons' action keys, `ledger` records in the store which
events were handled and which codes were used, `push` builds the Home Assistant push, `press` turns one button
press into a decision or an audited refusal, and `listener` runs it all in a long-lived ArgoBox process.
"""
