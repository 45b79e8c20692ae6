-- pgbench: the database work of one successful booking, as the service sends it (captured from
-- its statement log): the create transaction (booking row, seat claims against the partial
-- unique index on live claims, audit row) and the transaction that attaches the checkout
-- (joined read, versioned update, audit row). Each client draws its own show, so claims do not
-- collide, as in the steady scenario.
\set bid random(1, 9000000000000000000)
\set show random(1, 2000000000)
\set n random(1, 4)
\set uid random(1, 1000000)
BEGIN;
INSERT INTO bookings (id, user_id, show_id, total_minor, currency, hold_expires_at, created_at, status, failure_reason, payment_session_id, payment_url, payment_expires_at, refund_required, version, updated_at) VALUES (:bid, :uid, :show, 15000 * :n, 'INR', now() + interval '5 minutes', now(), 'PENDING', NULL, NULL, NULL, NULL, false, 1, now()) ON CONFLICT (id) DO NOTHING RETURNING bookings.id;
INSERT INTO booking_seats (booking_id, seat_id, position, show_id, seat_number, seat_type, price_minor, claimed) SELECT :bid, s, s - 1, :show, '1-' || s, 'SILVER', 15000, true FROM generate_series(1, :n) AS s ON CONFLICT (show_id, seat_id) WHERE claimed DO NOTHING RETURNING booking_seats.seat_id;
INSERT INTO audit_log (booking_id, actor, at, from_status, to_status, reason, refund_required) VALUES (:bid, 'user:' || :uid, now(), NULL, 'PENDING', NULL, false) RETURNING audit_log.id;
COMMIT;
BEGIN;
SELECT bookings.id, bookings.user_id, bookings.show_id, bookings.status, bookings.failure_reason, bookings.total_minor, bookings.currency, bookings.hold_expires_at, bookings.payment_session_id, bookings.payment_url, bookings.payment_expires_at, bookings.refund_required, bookings.version, bookings.created_at, bookings.updated_at, bookings.reconcile_after, booking_seats.seat_id AS s_seat_id, booking_seats.seat_number AS s_seat_number, booking_seats.seat_type AS s_seat_type, booking_seats.price_minor AS s_price_minor FROM bookings JOIN booking_seats ON booking_seats.booking_id = bookings.id WHERE bookings.id = :bid ORDER BY booking_seats.position;
UPDATE bookings SET status = 'PENDING', failure_reason = NULL, payment_session_id = 'cs_bench_' || :bid, payment_url = 'http://127.0.0.1:8084/checkout/cs_bench_' || :bid, payment_expires_at = now() + interval '5 hours', refund_required = false, version = 2, updated_at = now() WHERE bookings.id = :bid AND bookings.version = 1;
INSERT INTO audit_log (booking_id, actor, at, from_status, to_status, reason, refund_required) VALUES (:bid, 'user:' || :uid, now(), 'PENDING', 'PENDING', NULL, false) RETURNING audit_log.id;
COMMIT;
