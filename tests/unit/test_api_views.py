"""How the API writes what a service answers (``gateway.api._views.AnswerJSON``): kombu hands
timestamps, dates and amounts back as Python values; the answer carries them as the
services' own schemas dump them."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

from gateway.app import create_app


def test_an_answer_writes_dates_in_iso_8601_and_amounts_as_decimal_text():
    app = create_app(testing=True)
    answer = {"at": datetime(2026, 3, 1, 14, 30, tzinfo=timezone.utc), "day": date(2026, 3, 1),
              "rows": [{"balance": Decimal("3265.50")}]}
    with app.app_context():
        written = json.loads(app.json.dumps(answer))
    assert written == {"at": "2026-03-01T14:30:00+00:00", "day": "2026-03-01",
                       "rows": [{"balance": "3265.50"}]}
