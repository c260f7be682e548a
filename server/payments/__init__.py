"""Payments through Stripe: Checkout for credit packs and tier subscriptions, and its webhook.

Stripe I/O stays here, at the server's edge: `client` (the official SDK), `webhook` (verifying
and applying events), `routes` (the HTTP surface). What an event means is decided by pure
functions in `events`; the ledger and the org's tier are changed through their own modules.
"""
