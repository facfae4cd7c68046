//! Points spread uniformly over the sphere, the opposite of clustered businesses.

use crate::{SplitMix64, mix64};

/// `n` points `(latitude, longitude)` in degrees, uniform over the sphere's surface
/// (latitude = asin(2u − 1), longitude uniform in `[-180, 180)`), seeded and deterministic.
///
/// ```
/// let points: Vec<(f64, f64)> = nearby_data::uniform_points(1000, 7).collect();
/// assert_eq!(points.len(), 1000);
/// assert!(points.iter().all(|&(lat, lon)| lat.abs() <= 90.0 && (-180.0..180.0).contains(&lon)));
/// // Uniform on the sphere: about half of the area lies within 30° of the equator.
/// let tropical = points.iter().filter(|p| p.0.abs() < 30.0).count();
/// assert!((430..570).contains(&tropical));
/// ```
pub fn uniform_points(n: usize, seed: u64) -> impl ExactSizeIterator<Item = (f64, f64)> {
    let mut rng = SplitMix64::new(mix64(seed ^ 0x756E_6966_6F72_6D21));
    (0..n).map(move |_| {
        let z = 2.0 * rng.next_f64() - 1.0;
        let lat = libm::asin(z).to_degrees().clamp(-90.0, 90.0);
        let lon = rng.next_f64() * 360.0 - 180.0;
        (lat, lon)
    })
}
