"""The transaction coordinator, over ``__transaction_state`` (Kafka transactions, V1)."""
