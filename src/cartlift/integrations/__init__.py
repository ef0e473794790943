"""Ways in without code: Segment/RudderStack and Shopify payloads, the storefront tracker.

Each integration is a pure function from a payload to event records in cartlift's own schema
(validated later by the events package, like every other way in) and `Identity` records. The
service (``serve/routes/integrations.py``, ``serve/routes/track.py``) stores what they return.
"""

from cartlift.integrations._records import Identity, Mapped
from cartlift.integrations._restore import RESTORE_PARAMETER, restore_link, sign_restore, verify_restore
from cartlift.integrations._segment import SEGMENT_EVENTS, segment_records
from cartlift.integrations._shopify import SHOPIFY_TOPICS, shopify_records, shopify_signature, verify_shopify
from cartlift.integrations._tracker import TRACKER_EVENTS, tracker_records, tracker_script

__all__ = [
    "RESTORE_PARAMETER",
    "SEGMENT_EVENTS",
    "SHOPIFY_TOPICS",
    "TRACKER_EVENTS",
    "Identity",
    "Mapped",
    "restore_link",
    "segment_records",
    "shopify_records",
    "shopify_signature",
    "sign_restore",
    "tracker_records",
    "tracker_script",
    "verify_restore",
    "verify_shopify",
]
