"""The producer: Binance trades from a websocket (or recorded captures) into the SQS trades queue.

    parse     pure: combined-stream frame -> exact trade line (venue quirks live here)
    batching  pure: trade lines -> SQS message bodies within the size limit, flushed by age
    stream    the connection loop: reconnect with backoff, silence watchdog, overlapping rotation
    sources   where frames come from: BinanceSource (live), ReplaySource (capture files)
    sinks     bounded queue + background SendMessageBatch senders, loud drops
    main      run(): source -> parser -> packer -> sink, signal handling, periodic stats

Nothing here imports prefect; the flows read what this package writes through ``tasks.core.contract``.
"""
