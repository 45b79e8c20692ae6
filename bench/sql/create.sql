-- pgbench: the create transaction alone (booking row, seat claims, audit row).
\set bid random(1, 9000000000000000000)
\set show random(1, 2000000000)
\set n random(1, 4)
\set uid random(1, 1000000)
BEGIN;
INSERT INTO bookings (id, user_id, show_id, total_minor, currency, hold_expires_at, created_at, status, failure_reason, payment_session_id, payment_url, payment_expires_at, refund_required, version, updated_at) VALUES (:bid, :uid, :show, 15000 * :n, 'INR', now() + interval '5 minutes', now(), 'PENDING', NULL, NULL, NULL, NULL, false, 1, now()) ON CONFLICT (id) DO NOTHING RETURNING bookings.id;
INSERT INTO booking_seats (booking_id, seat_id, position, show_id, seat_number, seat_type, price_minor, claimed) SELECT :bid, s, s - 1, :show, '1-' || s, 'SILVER', 15000, true FROM generate_series(1, :n) AS s ON CONFLICT (show_id, seat_id) WHERE claimed DO NOTHING RETURNING booking_seats.seat_id;
INSERT INTO audit_log (booking_id, actor, at, from_status, to_status, reason, refund_required) VALUES (:bid, 'user:' || :uid, now(), NULL, 'PENDING', NULL, false) RETURNING audit_log.id;
COMMIT;
