"""An idempotent batch sent right behind one a broker refused because it did not lead the
partition yet gets NOT_LEADER_OR_FOLLOWER too once the broker leads, not
OUT_OF_ORDER_SEQUENCE_NUMBER: librdkafka would answer the latter by bumping its producer
epoch, which can write another partition's records twice (confluentinc/librdkafka#4953).
The producer then retries both in order and both are written once. Spoken over the wire
by hand, so the leadership change lands exactly between the two requests."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka.admin import AdminClient, NewTopic

from odradek.protocol.errors import ErrorCode
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch
from tests.integration.cluster.conftest import Cluster
from tests.integration.cluster.failover import fully_replicated, partition_states, wait_for
from tests.support.wire import WireClient, init_producer_id_request, produce_request

Factory = Callable[..., Cluster]
TOPIC = "refusals"


class IdempotentProducer:
    def __init__(self, client: WireClient) -> None:
        init = client.call(init_producer_id_request())
        assert ErrorCode(init.error_code) is ErrorCode.none, init
        self.producer_id = int(init.producer_id)
        self.epoch = int(init.producer_epoch)

    def produce(self, broker: WireClient, sequence: int, count: int = 2) -> tuple[ErrorCode, int]:
        """One batch of ``count`` records from ``sequence`` (acks=1): error, base offset."""
        batch = build_batch(
            [NewRecord(key=None, value=b"%d" % (sequence + i)) for i in range(count)],
            BatchSpec(
                producer_id=self.producer_id,
                producer_epoch=self.epoch,
                base_sequence=sequence,
            ),
        )
        response = broker.call(produce_request(TOPIC, 0, batch, acks=1))
        result = response.responses[0].partition_responses[0]
        return ErrorCode(result.error_code), int(result.base_offset)


def test_a_batch_behind_one_refused_before_leadership_is_refused_alike(
    cluster_factory: Factory,
) -> None:
    cluster = cluster_factory(2)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, replica_assignment=[[2, 1]])])[TOPIC].result(30)
    wait_for(lambda: fully_replicated(cluster.bootstrap, TOPIC, [1, 2]), what="topic ready")
    one, two = cluster.brokers[1], cluster.brokers[2]
    with WireClient(one.bootstrap) as to_one, WireClient(two.bootstrap) as to_two:
        producer = IdempotentProducer(to_one)
        assert producer.produce(to_two, 0) == (ErrorCode.none, 0)
        wait_for(lambda: fully_replicated(one.bootstrap, TOPIC, [1, 2]), what="replicated")
        # R1 reaches broker 1 while broker 2 still leads: refused, nothing written.
        assert producer.produce(to_one, 2)[0] is ErrorCode.not_leader_or_follower
        assert two.stop() == 0, two.log()  # controlled shutdown: broker 1 leads now
        wait_for(lambda: partition_states(one.bootstrap, TOPIC)[0][0] == 1, what="broker 1 leads")
        # R2 was sent behind R1: Kafka would answer OUT_OF_ORDER_SEQUENCE_NUMBER.
        assert producer.produce(to_one, 4)[0] is ErrorCode.not_leader_or_follower
        # A batch that does not follow the refused one is out of order, as in Kafka.
        assert producer.produce(to_one, 9)[0] is ErrorCode.out_of_order_sequence_number
        # The producer retries in order; a repeat is recognised as one.
        assert producer.produce(to_one, 2) == (ErrorCode.none, 2)
        assert producer.produce(to_one, 4) == (ErrorCode.none, 4)
        assert producer.produce(to_one, 4) == (ErrorCode.none, 4)
        assert producer.produce(to_one, 6) == (ErrorCode.none, 6)
