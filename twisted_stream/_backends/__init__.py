"""Where channels keep what they publish: in this process (:mod:`._memory`), or shared between
processes and hosts through Redis (:mod:`._redis`). Generic (items, or entries of ids and
byte fields); imports nothing of ``_events``, which builds on it."""
