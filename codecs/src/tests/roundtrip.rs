use crate::{SampleWidth, decode, encode};

#[test]
fn smoke() {
    let x: Vec<i32> = (0..5000).map(|i| ((i as f64 * 0.05).sin() * 900.0) as i32).collect();
    let mut b = Vec::new();
    encode(&x, SampleWidth::Bits16, &mut b).unwrap();
    assert_eq!(decode(&b).unwrap(), x);
}
