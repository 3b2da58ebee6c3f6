"""The bridge to the hoster's billing: outbox events and the sinks that deliver them.

The outbox (sql, db/outbox.py) writes one event in the transaction of each credit, reversal and
void; the dispatcher (billing/dispatcher.py) hands each to the configured sink (one module
each under billing/sinks/), which answers with one of the outcomes in billing/sink.py.
"""
