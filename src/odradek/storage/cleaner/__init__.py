"""The log cleaner: compaction of ``cleanup.policy=compact`` logs (Kafka's ``LogCleaner``
split): ``offset_map`` (key -> latest offset), ``cleaner`` (one cleaning, file to file,
safe in a worker thread), ``manager`` (checkpoints, which log next, the swap)."""
