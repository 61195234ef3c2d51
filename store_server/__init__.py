"""Store server: fuses edge events into carts, charges at exit, issues receipts."""
