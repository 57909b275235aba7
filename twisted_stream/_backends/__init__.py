"""Where channels keep what they publish: in this process now (:mod:`._memory`), shared
between processes later (Redis). Generic over the item kept; imports nothing of
twisted_stream, so ``_events`` builds on it."""
