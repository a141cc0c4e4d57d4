//! Wire requests into domain values: every field is checked, and every bad
//! field is reported under its JSON name.

use super::product::Price;
use super::{
    After, Brand, CategorySlug, Description, Dimensions, DiscountPercentage, ImageUrl, InfoText,
    Measure, MinimumOrderQuantity, NewProduct, Page, PriceRange, ProductExtras, ProductFilter,
    ProductPatch, ProductQuery, Sku, SortKey, SortOrder, Stock, Title, Violations, parse_images,
    parse_tags,
};
use crate::proto::ecom::catalog::v1 as pb;

impl TryFrom<pb::CreateProductRequest> for NewProduct {
    type Error = Violations;

    /// POST /products/add: title 3-200, description 10-5000, price > 0 with at
    /// most 2 decimals, discount 0-100, thumbnail and images http(s) URLs,
    /// a category slug, a brand, stock >= 0.
    fn try_from(req: pb::CreateProductRequest) -> Result<Self, Violations> {
        let mut v = Violations::default();
        let title = v.check("title", Title::parse(&req.title));
        let description = v.check("description", Description::parse(&req.description));
        let price = v.check("price", Price::from_wire(req.price));
        let discount_percentage = match req.discount_percentage {
            None => Some(DiscountPercentage::NONE),
            Some(d) => v.check("discountPercentage", DiscountPercentage::parse(d)),
        };
        let thumbnail = v.check("thumbnail", ImageUrl::parse(&req.thumbnail));
        let images = parse_images(&req.images, &mut v);
        let category = v.check("category", CategorySlug::parse(&req.category));
        let brand = v.check("brand", Brand::parse(&req.brand));
        let stock = v.check("stock", Stock::parse(req.stock.into()));
        let extras = parse_extras(
            ExtrasInput {
                sku: req.sku.as_deref(),
                tags: &req.tags,
                weight: req.weight,
                dimensions: req.dimensions.as_ref(),
                warranty_information: req.warranty_information.as_deref(),
                shipping_information: req.shipping_information.as_deref(),
                return_policy: req.return_policy.as_deref(),
                minimum_order_quantity: req.minimum_order_quantity,
            },
            &mut v,
        );
        let (
            Some(title),
            Some(description),
            Some(price),
            Some(discount_percentage),
            Some(thumbnail),
            Some(images),
            Some(category),
            Some(brand),
            Some(stock),
            Some(extras),
        ) = (
            title,
            description,
            price,
            discount_percentage,
            thumbnail,
            images,
            category,
            brand,
            stock,
            extras,
        )
        else {
            return Err(v);
        };
        Ok(NewProduct {
            title,
            description,
            price,
            discount_percentage,
            thumbnail,
            images,
            category,
            brand,
            stock,
            extras,
        })
    }
}

impl TryFrom<&pb::UpdateProductRequest> for ProductPatch {
    type Error = Violations;

    /// PUT or PATCH /products/{id}: the same rules as a create, for the fields present.
    /// An empty `images` or `tags` leaves them unchanged (repeated fields
    /// cannot say "absent").
    fn try_from(req: &pb::UpdateProductRequest) -> Result<Self, Violations> {
        let mut v = Violations::default();
        let mut patch = ProductPatch {
            title: present(&mut v, "title", req.title.as_deref().map(Title::parse)),
            description: present(
                &mut v,
                "description",
                req.description.as_deref().map(Description::parse),
            ),
            price: present(&mut v, "price", req.price.map(Price::from_wire)),
            discount_percentage: present(
                &mut v,
                "discountPercentage",
                req.discount_percentage.map(DiscountPercentage::parse),
            ),
            thumbnail: present(
                &mut v,
                "thumbnail",
                req.thumbnail.as_deref().map(ImageUrl::parse),
            ),
            images: None,
            category: present(
                &mut v,
                "category",
                req.category.as_deref().map(CategorySlug::parse),
            ),
            brand: present(&mut v, "brand", req.brand.as_deref().map(Brand::parse)),
            stock: present(&mut v, "stock", req.stock.map(|s| Stock::parse(s.into()))),
            extras: ProductExtras::default(),
        };
        if !req.images.is_empty() {
            patch.images = parse_images(&req.images, &mut v);
        }
        let extras = parse_extras(
            ExtrasInput {
                sku: req.sku.as_deref(),
                tags: &req.tags,
                weight: req.weight,
                dimensions: req.dimensions.as_ref(),
                warranty_information: req.warranty_information.as_deref(),
                shipping_information: req.shipping_information.as_deref(),
                return_policy: req.return_policy.as_deref(),
                minimum_order_quantity: req.minimum_order_quantity,
            },
            &mut v,
        );
        if let Some(extras) = extras {
            patch.extras = extras;
        }
        v.finish(|| patch)
    }
}

/// A request for a page of products: a listing, a search or a category page.
pub trait ListingRequest {
    /// The query it asks for; `limit=0` asks for up to `list_all_max` products.
    fn to_query(&self, list_all_max: i64) -> Result<ProductQuery, Violations>;
}

impl ProductQuery {
    /// The query a listing request asks for (see [`ListingRequest`]).
    pub fn parse(req: &impl ListingRequest, list_all_max: i64) -> Result<ProductQuery, Violations> {
        req.to_query(list_all_max)
    }
}

/// The listing parameters every list request shares: skip and limit, sortBy and order,
/// the price range, brand and in-stock filters.
pub(super) struct ListingInput<'a> {
    pub list_all_max: i64,
    pub skip: Option<i64>,
    pub limit: Option<i64>,
    pub sort_by: &'a str,
    pub order: &'a str,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    pub brand: Option<&'a str>,
    pub in_stock: Option<bool>,
    /// `cursor`; an empty one is none (a client passing back an absent nextCursor).
    pub cursor: Option<&'a str>,
}

impl ListingInput<'_> {
    fn into_query(
        self,
        text: Option<String>,
        category: Option<String>,
    ) -> Result<ProductQuery, Violations> {
        let mut v = Violations::default();
        let page = Page::parse(self.skip, self.limit, self.list_all_max, &mut v);
        let sort = v.check("sortBy", SortKey::parse(Some(self.sort_by)));
        let order = v.check("order", SortOrder::parse(Some(self.order)));
        let price = PriceRange::parse(self.min_price, self.max_price, &mut v);
        let brand = self
            .brand
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_owned);
        let cursor = self.cursor.map(str::trim).filter(|c| !c.is_empty());
        if cursor.is_some() && self.skip.is_some() {
            // Two positions for one page: refused rather than one silently ignored.
            v.push(
                "skip",
                "must not be given with cursor (the cursor says where the page starts)",
            );
        }
        let (Some(page), Some(sort), Some(order), Some(price)) = (page, sort, order, price) else {
            return Err(v);
        };
        let mut query = ProductQuery {
            text,
            filter: ProductFilter {
                category,
                price,
                brand,
                in_stock: self.in_stock.unwrap_or(false),
            },
            sort,
            order,
            page,
            after: None,
        };
        if let Some(token) = cursor {
            query.after = v.check(
                "cursor",
                After::decode(token, &query.shape()).map_err(|e| e.message().to_owned()),
            );
        }
        v.finish(|| query)
    }
}

impl ListingRequest for pb::ListProductsRequest {
    fn to_query(&self, list_all_max: i64) -> Result<ProductQuery, Violations> {
        let req = self;
        ListingInput {
            list_all_max,
            skip: req.skip.map(i64::from),
            limit: req.limit.map(i64::from),
            sort_by: &req.sort_by,
            order: &req.order,
            min_price: req.min_price,
            max_price: req.max_price,
            brand: req.brand.as_deref(),
            in_stock: req.in_stock,
            cursor: req.cursor.as_deref(),
        }
        .into_query(None, None)
    }
}

impl ListingRequest for pb::SearchProductsRequest {
    /// GET /products/search: a blank `q` lists everything.
    fn to_query(&self, list_all_max: i64) -> Result<ProductQuery, Violations> {
        let req = self;
        let text = req.q.trim();
        if text.chars().count() > 200 {
            return Err(Violations::one("q", "must be at most 200 characters"));
        }
        ListingInput {
            list_all_max,
            skip: req.skip.map(i64::from),
            limit: req.limit.map(i64::from),
            sort_by: &req.sort_by,
            order: &req.order,
            min_price: req.min_price,
            max_price: req.max_price,
            brand: req.brand.as_deref(),
            in_stock: req.in_stock,
            cursor: req.cursor.as_deref(),
        }
        .into_query((!text.is_empty()).then(|| text.to_owned()), None)
    }
}

impl ListingRequest for pb::ListProductsByCategoryRequest {
    /// GET /products/category/{category}: an unknown category is an empty page, not an
    /// error.
    fn to_query(&self, list_all_max: i64) -> Result<ProductQuery, Violations> {
        let req = self;
        ListingInput {
            list_all_max,
            skip: req.skip.map(i64::from),
            limit: req.limit.map(i64::from),
            sort_by: &req.sort_by,
            order: &req.order,
            min_price: req.min_price,
            max_price: req.max_price,
            brand: req.brand.as_deref(),
            in_stock: req.in_stock,
            cursor: req.cursor.as_deref(),
        }
        .into_query(None, Some(req.category.trim().to_lowercase()))
    }
}

/// The optional details shared by create and update requests.
struct ExtrasInput<'a> {
    sku: Option<&'a str>,
    tags: &'a [String],
    weight: Option<f64>,
    dimensions: Option<&'a pb::Dimensions>,
    warranty_information: Option<&'a str>,
    shipping_information: Option<&'a str>,
    return_policy: Option<&'a str>,
    minimum_order_quantity: Option<i32>,
}

fn parse_extras(input: ExtrasInput<'_>, v: &mut Violations) -> Option<ProductExtras> {
    let before = v.as_slice().len();
    let dimensions = input.dimensions.and_then(|d| {
        let width = v.check("dimensions", Measure::parse(d.width));
        let height = v.check("dimensions", Measure::parse(d.height));
        let depth = v.check("dimensions", Measure::parse(d.depth));
        Some(Dimensions {
            width: width?,
            height: height?,
            depth: depth?,
        })
    });
    let extras = ProductExtras {
        sku: present(v, "sku", input.sku.map(Sku::parse)),
        tags: if input.tags.is_empty() {
            None
        } else {
            v.check("tags", parse_tags(input.tags))
        },
        weight: present(v, "weight", input.weight.map(Measure::parse)),
        dimensions,
        warranty_information: present(
            v,
            "warrantyInformation",
            input.warranty_information.map(InfoText::parse),
        ),
        shipping_information: present(
            v,
            "shippingInformation",
            input.shipping_information.map(InfoText::parse),
        ),
        return_policy: present(v, "returnPolicy", input.return_policy.map(InfoText::parse)),
        minimum_order_quantity: present(
            v,
            "minimumOrderQuantity",
            input
                .minimum_order_quantity
                .map(MinimumOrderQuantity::parse),
        ),
    };
    (v.as_slice().len() == before).then_some(extras)
}

/// Parses an optional field: absent stays `None`, a failure is recorded.
fn present<T>(v: &mut Violations, field: &str, parsed: Option<Result<T, String>>) -> Option<T> {
    parsed.and_then(|parsed| v.check(field, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_create() -> pb::CreateProductRequest {
        pb::CreateProductRequest {
            title: "Nimbus Phone 12".into(),
            description: "A phone with a bright display.".into(),
            price: 199.99,
            discount_percentage: Some(5.0),
            thumbnail: "https://cdn.example.com/p/1.webp".into(),
            images: vec!["https://cdn.example.com/p/1-1.webp".into()],
            category: "smartphones".into(),
            brand: "Nimbus".into(),
            stock: 3,
            ..Default::default()
        }
    }

    fn fields(v: &Violations) -> Vec<&str> {
        v.as_slice().iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn a_valid_create_converts() {
        let product = NewProduct::try_from(valid_create()).unwrap();
        assert_eq!(product.price.cents(), 19_999);
        assert_eq!(product.category.as_str(), "smartphones");
        assert_eq!(product.images.len(), 1);
        assert_eq!(product.extras, ProductExtras::default());
    }

    #[test]
    fn a_create_reports_every_bad_field() {
        let req = pb::CreateProductRequest {
            title: "ab".into(),
            description: "short".into(),
            price: 0.0,
            discount_percentage: Some(150.0),
            thumbnail: "not-a-url".into(),
            images: vec!["ftp://x/y".into()],
            category: "".into(),
            brand: " ".into(),
            stock: -1,
            ..Default::default()
        };
        let v = NewProduct::try_from(req).unwrap_err();
        assert_eq!(
            fields(&v),
            [
                "title",
                "description",
                "price",
                "discountPercentage",
                "thumbnail",
                "images",
                "category",
                "brand",
                "stock"
            ]
        );
    }

    #[test]
    fn a_price_with_three_decimals_is_rejected() {
        let req = pb::CreateProductRequest {
            price: 9.999,
            ..valid_create()
        };
        assert_eq!(fields(&NewProduct::try_from(req).unwrap_err()), ["price"]);
    }

    #[test]
    fn a_patch_checks_only_present_fields_and_zero_is_a_value() {
        let req = pb::UpdateProductRequest {
            id: 1,
            stock: Some(0),
            discount_percentage: Some(0.0),
            ..Default::default()
        };
        let patch = ProductPatch::try_from(&req).unwrap();
        assert_eq!(patch.stock.map(Stock::units), Some(0));
        assert_eq!(
            patch.discount_percentage.map(DiscountPercentage::value),
            Some(0.0)
        );
        assert!(patch.title.is_none() && patch.images.is_none());

        let req = pb::UpdateProductRequest {
            id: 1,
            price: Some(0.0),
            ..Default::default()
        };
        assert_eq!(
            fields(&ProductPatch::try_from(&req).unwrap_err()),
            ["price"]
        );
    }

    #[test]
    fn listing_parameters_are_checked() {
        let req = pb::ListProductsRequest {
            sort_by: "stock".into(),
            order: "sideways".into(),
            ..Default::default()
        };
        assert_eq!(
            fields(&ProductQuery::parse(&req, 1000).unwrap_err()),
            ["sortBy", "order"]
        );

        let req = pb::ListProductsRequest {
            brand: Some("  ".into()),
            in_stock: Some(true),
            ..Default::default()
        };
        let query = ProductQuery::parse(&req, 1000).unwrap();
        assert_eq!(query.filter.brand, None);
        assert!(query.filter.in_stock);
        assert_eq!(query.page.limit(), Page::DEFAULT_LIMIT);
    }

    #[test]
    fn a_blank_search_lists_everything() {
        let req = pb::SearchProductsRequest {
            q: "  ".into(),
            ..Default::default()
        };
        assert_eq!(ProductQuery::parse(&req, 1000).unwrap().text, None);
    }
}
