"""Send every Segment message type with the official Python SDK (segment-analytics-python).

Usage: segment_sdk.py HOST WRITE_KEY. Exits non-zero if the SDK reports an error."""
import sys

import segment.analytics as analytics

host, write_key = sys.argv[1], sys.argv[2]
errors = []
analytics.write_key = write_key
analytics.host = host
analytics.on_error = lambda error, batch: errors.append(repr(error))
analytics.max_retries = 0

analytics.track("C-100", "Product Viewed", {"sku": "A", "category": "shoes"})
analytics.identify("C-100", {"city": "杭州", "email": "sdk@example.cn"})
analytics.page("C-100", "Shop", "Home", {"url": "https://shop.example.cn/"})
analytics.screen("C-100", "App", "Cart")
analytics.group("C-100", "G-1", {"name": "VIP club"})
analytics.alias("anon-1", "C-100")
analytics.track(anonymous_id="anon-2", event="Cart Viewed", properties={"items": 2})
analytics.flush()
analytics.shutdown()
if errors:
    print("\n".join(errors))
    sys.exit(1)
print("sent 7 messages")
