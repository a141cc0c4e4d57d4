//! `multipart/form-data` request bodies mapped onto the body's message.
//!
//! The convention (also in `options.proto`): a part named `x` whose field
//! `x` is `bytes` is a file: its data fill `x`, its content type and file
//! name fill the sibling string fields `x_content_type` and `x_filename`
//! when the message has them. Every other part is text and is bound by name
//! like a query parameter. A part that names no field is a 400. This module
//! owns only that mapping; limits are enforced while streaming (413).

use bytes::Bytes;
use futures::TryStreamExt;
use http::StatusCode;
use http_body_util::BodyDataStream;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

use crate::body::BoxError;
use crate::codec::bind_value;
use crate::error::EdgeError;

/// Whether a message can be the target of a multipart body: it has a
/// (singular) `bytes` field.
pub(crate) fn accepts(target: &MessageDescriptor) -> bool {
    target
        .fields()
        .any(|f| matches!(f.kind(), Kind::Bytes) && !f.is_list())
}

fn field_named(desc: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    desc.get_field_by_name(name)
        .or_else(|| desc.get_field_by_json_name(name))
}

/// Streams the parts of `body` into `msg`.
pub(crate) async fn bind<B>(
    body: B,
    boundary: String,
    msg: &mut DynamicMessage,
    limit: usize,
) -> Result<(), EdgeError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let stream = BodyDataStream::new(body).map_err(Into::<BoxError>::into);
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let desc = msg.descriptor();
    while let Some(part) = multipart.next_field().await.map_err(multipart_error)? {
        let Some(name) = part.name().map(str::to_owned) else {
            return Err(EdgeError::validation(None, "multipart part without a name"));
        };
        match field_named(&desc, &name).filter(|f| matches!(f.kind(), Kind::Bytes) && !f.is_list())
        {
            Some(file_field) => {
                let content_type = part.content_type().map(|m| m.to_string());
                let file_name = part.file_name().map(str::to_owned);
                let data = part.bytes().await.map_err(multipart_error)?;
                msg.set_field(&file_field, Value::Bytes(data));
                for (suffix, value) in [("_content_type", content_type), ("_filename", file_name)] {
                    let sibling = desc.get_field_by_name(&format!("{}{suffix}", file_field.name()));
                    if let (Some(sibling), Some(value)) = (sibling, value)
                        && matches!(sibling.kind(), Kind::String)
                    {
                        msg.set_field(&sibling, Value::String(value));
                    }
                }
            }
            None => {
                let text = part.text().await.map_err(multipart_error)?;
                match bind_value(msg, &name, &text) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(EdgeError::validation(Some(&name), "unknown multipart part"));
                    }
                    Err(e) => {
                        return Err(EdgeError::validation(
                            Some(e.field.as_deref().unwrap_or(&name)),
                            e.message,
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn multipart_error(e: multer::Error) -> EdgeError {
    match e {
        multer::Error::StreamSizeExceeded { limit }
        | multer::Error::FieldSizeExceeded { limit, .. } => EdgeError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body larger than {limit} bytes"),
        ),
        other => EdgeError::new(
            StatusCode::BAD_REQUEST,
            format!("Malformed multipart body: {other}"),
        ),
    }
}
