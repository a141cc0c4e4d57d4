//! The invoice of an order as a PDF (GET /orders/{id}/invoice): seller, buyer, billing and
//! shipping addresses, shipping method and tax rate, every line, subtotal, the coupon's
//! discount (with its code), tax, shipping and total.

use super::domain::{Address, Order};
use super::pdf::{Font, PAGE_HEIGHT, PAGE_WIDTH, Page};

/// Who sells: SELLER_NAME and SELLER_ADDRESS.
#[derive(Clone, Debug)]
pub struct Seller {
    pub name: String,
    /// Address lines, top to bottom.
    pub address: Vec<String>,
}

/// Who buys: the account's name and email (the billing name when the account is gone).
#[derive(Clone, Debug)]
pub struct Buyer {
    pub name: String,
    pub email: String,
}

const MARGIN: f32 = 50.0;
const RIGHT: f32 = PAGE_WIDTH - MARGIN;
/// Right edges of the numeric columns of the lines table.
const QTY: f32 = 340.0;
const UNIT: f32 = 415.0;
const DISCOUNT: f32 = 475.0;
/// Below this height a page is full (room for the footer).
const BOTTOM: f32 = 70.0;
/// Characters of a product title that fit before the quantity column.
const TITLE_CHARS: usize = 48;

/// `cents` as `$1,234.56`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let units = (cents / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, digit) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

/// An address as lines: name, street, city/state/zip, country, phone.
fn address_lines(a: &Address) -> Vec<String> {
    let name = format!("{} {}", a.first_name, a.last_name);
    let city = format!("{}, {} {}", a.city, a.state, a.zip_code);
    [
        name.trim(),
        a.address.trim(),
        city.trim_matches([' ', ',']),
        a.country.trim(),
        a.phone.trim(),
    ]
    .into_iter()
    .filter(|l| !l.is_empty())
    .map(str::to_owned)
    .collect()
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(chars - 3).collect();
        t.push_str("...");
        t
    }
}

/// Pages in progress and the height where the next row goes.
struct Layout {
    pages: Vec<Page>,
    y: f32,
}

impl Layout {
    fn page(&mut self) -> &mut Page {
        self.pages.last_mut().expect("at least one page")
    }

    /// Makes room for a row of `height`, starting a page when this one is full.
    fn row(&mut self, height: f32, order_id: &str) -> f32 {
        if self.y - height < BOTTOM {
            let mut page = Page::default();
            page.text(
                MARGIN,
                PAGE_HEIGHT - MARGIN,
                Font::Bold,
                10.0,
                &format!("Invoice {order_id} (continued)"),
            );
            self.pages.push(page);
            self.y = PAGE_HEIGHT - MARGIN - 24.0;
        }
        self.y -= height;
        self.y
    }
}

/// The invoice PDF of `order`.
pub fn render(order: &Order, seller: &Seller, buyer: &Buyer) -> Vec<u8> {
    let mut first = Page::default();
    let top = PAGE_HEIGHT - MARGIN;
    first.text(MARGIN, top - 14.0, Font::Bold, 22.0, "INVOICE");
    let mut y = top - 36.0;
    for (label, value) in [
        ("Invoice", format!("invoice-{}", order.id)),
        ("Order", order.id.clone()),
        (
            "Order date",
            order.created_at.format("%Y-%m-%d").to_string(),
        ),
        ("Payment", order.payment_method.clone()),
        ("Shipping", order.shipping_method.clone()),
        (
            "Tax rate",
            order
                .tax_rate
                .map_or_else(|| "-".to_owned(), |r| r.percent_label()),
        ),
    ] {
        first.text(MARGIN, y, Font::Bold, 9.0, &format!("{label}:"));
        first.text(MARGIN + 70.0, y, Font::Regular, 9.0, &value);
        y -= 13.0;
    }

    // Seller, top right.
    let seller_x = 360.0;
    let mut sy = top - 14.0;
    first.text(seller_x, sy, Font::Bold, 11.0, &seller.name);
    for line in &seller.address {
        sy -= 13.0;
        first.text(seller_x, sy, Font::Regular, 9.0, line);
    }

    // Buyer, billing and shipping addresses in three columns.
    let blocks_top = y.min(sy) - 22.0;
    let columns = [
        (
            MARGIN,
            "Buyer",
            vec![buyer.name.clone(), buyer.email.clone()],
        ),
        (
            MARGIN + 175.0,
            "Billing address",
            address_lines(&order.billing_address),
        ),
        (
            MARGIN + 350.0,
            "Shipping address",
            address_lines(&order.shipping_address),
        ),
    ];
    let mut lowest = blocks_top;
    for (x, title, lines) in columns {
        first.text(x, blocks_top, Font::Bold, 10.0, title);
        let mut ly = blocks_top;
        for line in lines.iter().filter(|l| !l.trim().is_empty()) {
            ly -= 13.0;
            first.text(x, ly, Font::Regular, 9.0, &truncate(line, 34));
        }
        lowest = lowest.min(ly);
    }

    let mut layout = Layout {
        pages: vec![first],
        y: lowest - 28.0,
    };

    // The lines.
    let header_y = layout.y;
    let page = layout.page();
    page.text(MARGIN, header_y, Font::Bold, 9.0, "Item");
    page.text_right(QTY, header_y, Font::Bold, 9.0, "Qty");
    page.text_right(UNIT, header_y, Font::Bold, 9.0, "Unit price");
    page.text_right(DISCOUNT, header_y, Font::Bold, 9.0, "Discount");
    page.text_right(RIGHT, header_y, Font::Bold, 9.0, "Line total");
    page.rule(MARGIN, RIGHT, header_y - 5.0);
    layout.y -= 6.0;
    for line in &order.lines {
        let y = layout.row(14.0, &order.id);
        let page = layout.page();
        page.text(
            MARGIN,
            y,
            Font::Regular,
            9.0,
            &truncate(&line.title, TITLE_CHARS),
        );
        page.text_right(QTY, y, Font::Regular, 9.0, &line.quantity.to_string());
        page.text_right(UNIT, y, Font::Regular, 9.0, &money(line.price_cents));
        page.text_right(
            DISCOUNT,
            y,
            Font::Regular,
            9.0,
            &format!("{}%", f64::from(line.discount_bp) / 100.0),
        );
        page.text_right(
            RIGHT,
            y,
            Font::Regular,
            9.0,
            &money(line.discounted_total_cents),
        );
    }

    // The totals, right-aligned under the lines.
    let y = layout.row(10.0, &order.id);
    layout.page().rule(UNIT - 140.0, RIGHT, y);
    let t = &order.totals;
    let mut totals = vec![("Subtotal".to_owned(), t.subtotal_cents, Font::Regular)];
    if let Some(code) = &order.coupon_code {
        // Shown even at 0 (a free-shipping coupon): the buyer sees the code was redeemed.
        totals.push((
            format!("Discount ({code})"),
            -t.discount_cents,
            Font::Regular,
        ));
    }
    // The tax rate and the shipping method are in the header block.
    totals.push(("Tax".to_owned(), t.tax_cents, Font::Regular));
    totals.push(("Shipping".to_owned(), t.shipping_cents, Font::Regular));
    totals.push(("Total".to_owned(), t.total_cents, Font::Bold));
    // The labels start further left than before: "Discount (SUMMER-SALE-2026)" is long.
    let label_x = UNIT - 140.0;
    for (label, amount, font) in totals {
        let y = layout.row(15.0, &order.id);
        let page = layout.page();
        page.text(label_x, y, font, 10.0, &truncate(&label, 40));
        page.text_right(RIGHT, y, font, 10.0, &money(amount));
    }

    let count = layout.pages.len();
    for (n, page) in layout.pages.iter_mut().enumerate() {
        page.text(
            MARGIN,
            40.0,
            Font::Regular,
            8.0,
            &format!(
                "{} - invoice for order {} - page {} of {count}",
                seller.name,
                order.id,
                n + 1
            ),
        );
    }
    super::pdf::render(&format!("Invoice {}", order.id), &layout.pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::domain::{OrderStatus, PaymentState, PricedLine, Totals};

    #[test]
    fn amounts_have_thousands_separators_and_cents() {
        assert_eq!(money(0), "$0.00");
        assert_eq!(money(5), "$0.05");
        assert_eq!(money(18_144), "$181.44");
        assert_eq!(money(226_798), "$2,267.98");
        assert_eq!(money(123_456_789), "$1,234,567.89");
        assert_eq!(money(-999), "-$9.99");
    }

    #[test]
    fn long_orders_continue_on_further_pages() {
        let at = chrono::DateTime::from_timestamp(1_764_201_600, 0).unwrap();
        let order = Order {
            id: "ORD-2026112701".into(),
            user_id: 1,
            lines: (0..120)
                .map(|i| PricedLine::new(i, format!("Product {i}"), 100, 0, 1, String::new()))
                .collect(),
            totals: Totals {
                subtotal_cents: 12_000,
                discount_cents: 1_200,
                tax_cents: 0,
                shipping_cents: 0,
                total_cents: 10_800,
            },
            coupon_code: Some("SAVE10".into()),
            shipping_method: "express".into(),
            tax_rate: Some(crate::orders::domain::TaxRate::from_ppm(88_750).unwrap()),
            status: OrderStatus::Pending,
            payment_status: PaymentState::Unpaid,
            shipping_address: Address::default(),
            billing_address: Address::default(),
            payment_method: "card".into(),
            payment_intent_id: None,
            tracking_number: None,
            carrier: None,
            cancel_reason: None,
            cancelled_at: None,
            created_at: at,
            updated_at: at,
            history: Vec::new(),
            notes: Vec::new(),
            return_request: None,
        };
        let seller = Seller {
            name: "Shop".into(),
            address: vec!["Street 1".into()],
        };
        let buyer = Buyer {
            name: "Jane".into(),
            email: "jane@example.com".into(),
        };
        let pdf = render(&order, &seller, &buyer);
        // Read back by an independent parser (lopdf, a dev-dependency).
        let doc = lopdf::Document::load_mem(&pdf).expect("valid PDF");
        assert_eq!(doc.get_pages().len(), 3, "three pages for 120 lines");
        let first = doc.extract_text(&[1]).unwrap();
        let last = doc.extract_text(&[3]).unwrap();
        assert!(first.contains("Product 0\n1\n$1.00"), "{first}");
        assert!(
            last.contains("Invoice ORD-2026112701 (continued)"),
            "{last}"
        );
        assert!(last.contains("Product 119\n1\n$1.00"), "{last}");
        assert!(last.contains("page 3 of 3"), "{last}");
        assert!(last.contains("Discount (SAVE10)\n-$12.00"), "{last}");
        assert!(first.contains("Tax rate:\n8.875%"), "{first}");
        assert!(first.contains("Shipping:\nexpress"), "{first}");
        assert!(last.contains("Total\n$108.00"), "{last}");
    }
}
