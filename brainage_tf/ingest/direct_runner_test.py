"""The DirectRunner fix: the runner's time-flushed input stream loses no chunk written mid-flush."""

import time

from apache_beam.runners.worker import data_plane

from brainage_tf.ingest.direct_runner import serialize_buffered_writes


def test_a_chunk_written_during_a_periodic_flush_is_still_sent():
    serialize_buffered_writes()
    received = []

    def send(data: bytes) -> None:
        time.sleep(0.01)  # a slow send: the writer runs between the flush's get() and _clear()
        received.append(data)

    stream = data_plane.TimeBasedBufferingClosableOutputStream(
        send, flush_callback=send, time_flush_threshold_ms=20
    )
    chunks = [bytes([index]) * 1000 for index in range(100)]
    for chunk in chunks:
        stream.write(chunk)
        time.sleep(0.001)
    stream.close()
    assert len(received) > 2  # the periodic flusher did run while chunks were written
    assert b"".join(received) == b"".join(chunks)
