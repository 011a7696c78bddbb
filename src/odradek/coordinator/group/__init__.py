"""The classic consumer group coordinator, over ``__consumer_offsets``."""
