//! In-app notifications (GET /notifications, PUT /notifications/{id}/read) and their consumer
//! `users.notifications`.
//!
//! The events runner (branch h-events) is not on this branch yet: the consumer's `handle` is
//! called directly, in a transaction on the test's real database, the way the runner calls it.

use chrono::{DateTime, Duration, Utc};
use ecom::events::{Consumer, Event, EventData, OrderEvent, StockLow, TrackingInfo};
use ecom::proto::ecom::users::v1 as pb;
use ecom::proto::ecom::users::v1::users_service_client::UsersServiceClient;
use ecom::users::NotificationsConsumer;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::*;

pub fn order_event(user_id: i64, order_id: &str, status: &str) -> OrderEvent {
    OrderEvent {
        order_id: order_id.to_owned(),
        user_id,
        status: status.to_owned(),
        items: vec![],
        subtotal_cents: 2599,
        discount_cents: 0,
        shipping_cents: 0,
        tax_cents: 208,
        total_cents: 2807,
        coupon_code: None,
        tracking: None,
        reason: None,
    }
}

pub fn event(data: EventData, occurred_at: DateTime<Utc>) -> Event {
    Event {
        id: Uuid::new_v4(),
        occurred_at,
        data,
    }
}

/// What the runner does: `handle` in a transaction, committed.
pub async fn handle(app: &TestApp, consumer: &dyn Consumer, event: &Event) {
    assert!(
        consumer.wants(event.kind()),
        "{} wants {:?}",
        consumer.name(),
        event.kind()
    );
    let mut tx = app.db.begin().await.unwrap();
    consumer.handle(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn order_events_notify_their_user_newest_first_and_reads_are_own_and_idempotent() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let bob = app.register("bob@example.com").await;
    let t0 = Utc::now() - Duration::minutes(10);
    let mut shipped = order_event(alice.id, "ORD-1", "shipped");
    shipped.tracking = Some(TrackingInfo {
        carrier: "UPS".into(),
        tracking_number: "1Z999AA10123456784".into(),
        tracking_url: Some("https://www.ups.com/track?tracknum=1Z999AA10123456784".into()),
    });
    let events = [
        event(
            EventData::OrderPlaced(order_event(alice.id, "ORD-1", "pending")),
            t0,
        ),
        event(
            EventData::OrderPaid(order_event(alice.id, "ORD-1", "paid")),
            t0 + Duration::minutes(1),
        ),
        event(EventData::OrderShipped(shipped), t0 + Duration::minutes(2)),
        event(
            EventData::OrderPlaced(order_event(bob.id, "ORD-2", "pending")),
            t0 + Duration::minutes(3),
        ),
    ];
    for e in &events {
        handle(&app, &NotificationsConsumer, e).await;
    }
    // A redelivered event adds nothing (the (event, user) key is the backstop).
    handle(&app, &NotificationsConsumer, &events[0]).await;

    let page = json(app.get_as("/notifications", &alice.token).await).await;
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(page["unreadCount"], 3);
    assert_eq!(page["skip"], 0);
    assert_eq!(page["limit"], 20);
    let list = page["notifications"].as_array().unwrap();
    let kinds: Vec<&str> = list.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["order.shipped", "order.paid", "order.placed"],
        "newest first"
    );
    let shipped = &list[0];
    assert_eq!(shipped["data"]["orderId"], "ORD-1");
    assert_eq!(shipped["data"]["carrier"], "UPS");
    assert_eq!(shipped["data"]["trackingNumber"], "1Z999AA10123456784");
    assert!(
        shipped["body"]
            .as_str()
            .unwrap()
            .contains("1Z999AA10123456784"),
        "{shipped}"
    );
    assert_eq!(shipped["read"], false);
    assert!(
        shipped.get("readAt").is_none_or(Value::is_null),
        "{shipped}"
    );
    assert!(
        list[2]["body"].as_str().unwrap().contains("$28.07"),
        "{}",
        list[2]
    );

    // Mark read: answers the notification, read; a second time keeps the first read time.
    let id = shipped["id"].as_i64().unwrap();
    let path = format!("/notifications/{id}/read");
    let read = app.put_json(&path, &json!({}), Some(&alice.token)).await;
    assert_eq!(read.status().as_u16(), 200);
    let read = json(read).await;
    assert_eq!(read["id"], id);
    assert_eq!(read["read"], true);
    let read_at = read["readAt"].as_str().unwrap().to_owned();
    let again = json(app.put_json(&path, &json!({}), Some(&alice.token)).await).await;
    assert_eq!(again["readAt"], read_at.as_str(), "idempotent");

    let page = json(app.get_as("/notifications", &alice.token).await).await;
    assert_eq!(page["unreadCount"], 2);
    let unread = json(app.get_as("/notifications?unread=true", &alice.token).await).await;
    assert_eq!(unread["total"], 2);
    assert_eq!(unread["unreadCount"], 2);
    assert!(
        unread["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["read"] == false)
    );
    let second = json(
        app.get_as("/notifications?skip=1&limit=1", &alice.token)
            .await,
    )
    .await;
    assert_eq!(second["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(second["notifications"][0]["kind"], "order.paid");
    assert_eq!(second["total"], 3);

    // Own only: Bob sees his one, and Alice's is 404 to him (not 403), like an unknown id.
    let bobs = json(app.get_as("/notifications", &bob.token).await).await;
    assert_eq!(bobs["total"], 1);
    assert_eq!(bobs["notifications"][0]["data"]["orderId"], "ORD-2");
    assert_error(
        app.put_json(&path, &json!({}), Some(&bob.token)).await,
        404,
        "NOTIFICATION_NOT_FOUND",
    )
    .await;
    assert_error(
        app.put_json("/notifications/999999/read", &json!({}), Some(&alice.token))
            .await,
        404,
        "NOTIFICATION_NOT_FOUND",
    )
    .await;

    // Signed-in only; bounded pages.
    assert_error(app.get("/notifications").await, 401, "UNAUTHORIZED").await;
    assert_error(
        app.put_json(&path, &json!({}), None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    for bad in ["limit=101", "limit=-1", "skip=-1"] {
        let response = app
            .get_as(&format!("/notifications?{bad}"), &alice.token)
            .await;
        assert_error(response, 400, "VALIDATION_ERROR").await;
    }
}

#[tokio::test]
async fn cancelled_and_refunded_orders_say_why_and_status_changes_notify_nobody() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let now = Utc::now();
    let mut cancelled = order_event(alice.id, "ORD-9", "cancelled");
    cancelled.reason = Some("Changed my mind".into());
    handle(
        &app,
        &NotificationsConsumer,
        &event(EventData::OrderCancelled(cancelled), now),
    )
    .await;
    handle(
        &app,
        &NotificationsConsumer,
        &event(
            EventData::OrderRefunded(order_event(alice.id, "ORD-9", "refunded")),
            now + Duration::seconds(1),
        ),
    )
    .await;
    handle(
        &app,
        &NotificationsConsumer,
        &event(
            EventData::OrderDelivered(order_event(alice.id, "ORD-8", "delivered")),
            now + Duration::seconds(2),
        ),
    )
    .await;
    assert!(!NotificationsConsumer.wants(ecom::events::EventKind::OrderStatusChanged));
    // An event about a user that does not exist is acknowledged without effect, not an error
    // that would block the consumer.
    handle(
        &app,
        &NotificationsConsumer,
        &event(EventData::OrderPaid(order_event(424242, "X", "paid")), now),
    )
    .await;

    let page = json(app.get_as("/notifications", &alice.token).await).await;
    let list = page["notifications"].as_array().unwrap();
    let kinds: Vec<&str> = list.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["order.delivered", "order.refunded", "order.cancelled"]
    );
    assert!(
        list[2]["body"]
            .as_str()
            .unwrap()
            .contains("Changed my mind"),
        "{}",
        list[2]
    );

    // In-app notifications off (preferences): nothing new.
    let off = app
        .put_json(
            "/users/me/preferences",
            &json!({"notifications": false}),
            Some(&alice.token),
        )
        .await;
    assert_eq!(off.status().as_u16(), 200);
    handle(
        &app,
        &NotificationsConsumer,
        &event(
            EventData::OrderPaid(order_event(alice.id, "ORD-7", "paid")),
            now,
        ),
    )
    .await;
    let page = json(app.get_as("/notifications", &alice.token).await).await;
    assert_eq!(page["total"], 3);
}

#[tokio::test]
async fn low_stock_notifies_every_admin_once_and_no_customer() {
    let app = spawn_app().await;
    let admin1 = app.register_admin("ops1@example.com").await;
    let admin2 = app.register_admin("ops2@example.com").await;
    let customer = app.register("shopper@example.com").await;
    let low = event(
        EventData::StockLow(StockLow {
            product_id: 7,
            title: "Red Lipstick".into(),
            stock: 3,
            threshold: 5,
        }),
        Utc::now(),
    );
    handle(&app, &NotificationsConsumer, &low).await;
    handle(&app, &NotificationsConsumer, &low).await;
    for admin in [&admin1, &admin2] {
        let page = json(app.get_as("/notifications", &admin.token).await).await;
        assert_eq!(page["total"], 1, "{page}");
        let n = &page["notifications"][0];
        assert_eq!(n["kind"], "inventory.low_stock");
        assert_eq!(n["data"]["productId"], "7");
        assert!(n["body"].as_str().unwrap().contains("Red Lipstick"), "{n}");
    }
    let page = json(app.get_as("/notifications", &customer.token).await).await;
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn a_read_on_one_instance_is_seen_on_the_other_and_over_grpc() {
    let app = spawn_app().await;
    let sibling = app.spawn_sibling().await;
    let alice = app.register("alice@example.com").await;
    let e = event(
        EventData::OrderPlaced(order_event(alice.id, "ORD-1", "pending")),
        Utc::now(),
    );
    handle(&app, &NotificationsConsumer, &e).await;
    let page = json(app.get_as("/notifications", &alice.token).await).await;
    let id = page["notifications"][0]["id"].as_i64().unwrap();
    assert_eq!(page["unreadCount"], 1);

    let read = sibling
        .put_json(
            &format!("/notifications/{id}/read"),
            &json!({}),
            Some(&alice.token),
        )
        .await;
    assert_eq!(read.status().as_u16(), 200);
    let page = json(app.get_as("/notifications", &alice.token).await).await;
    assert_eq!(page["unreadCount"], 0, "{page}");
    assert_eq!(page["notifications"][0]["read"], true);

    // gRPC: the same answers and the same authorization.
    let mut client = UsersServiceClient::new(app.grpc_channel().await);
    let listed = client
        .list_notifications(authorized(
            pb::ListNotificationsRequest::default(),
            &alice.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total, 1);
    assert_eq!(listed.limit, 20);
    assert!(listed.notifications[0].read);
    assert_eq!(listed.notifications[0].data["orderId"], "ORD-1");
    let denied = client
        .list_notifications(tonic::Request::new(pb::ListNotificationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let other = app.register("mallory@example.com").await;
    let probe = client
        .mark_notification_read(authorized(
            pb::MarkNotificationReadRequest { id },
            &other.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(probe.code(), tonic::Code::NotFound);
}
