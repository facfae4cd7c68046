//! Business categories and how often each occurs.
//!
//! The weights are rough shares of points of interest in a mid-sized city (in the spirit
//! of OpenStreetMap tag counts): restaurants and shops dominate, post offices are rare.

/// How names are built for a category (see `names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// "Golden Lotus Restaurant", "The Silver Fox", "Rossi's Trattoria".
    Eatery,
    /// "Nguyen's Hardware", "Golden Flowers", "Oak Books".
    Shop,
    /// "Meridian Bank", "Atlas Fuel", "Grand Harbor Hotel".
    Brand,
    /// "Chen Dental Clinic", "Central Medical Center".
    Practice,
    /// "Alvand High School", "Green Meadow Kindergarten".
    Civic,
    /// "Alvand Post Office", "Alvand North Post Office".
    Post,
    /// "Summit Bank ATM".
    Atm,
}

/// One kind of business and its relative frequency.
///
/// ```
/// use nearby_data::CATEGORIES;
///
/// let restaurant = CATEGORIES.iter().find(|c| c.name == "restaurant").expect("listed");
/// let post = CATEGORIES.iter().find(|c| c.name == "post_office").expect("listed");
/// assert!(restaurant.weight > 10 * post.weight);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category {
    /// Snake-case tag, e.g. `"gas_station"`.
    pub name: &'static str,
    /// Relative frequency; the probability is `weight / TOTAL_CATEGORY_WEIGHT`.
    pub weight: u32,
    /// Words that end a business name of this kind ("Bistro", "Grill", ...).
    pub(crate) nouns: &'static [&'static str],
    pub(crate) style: Style,
}

const fn cat(
    name: &'static str,
    weight: u32,
    style: Style,
    nouns: &'static [&'static str],
) -> Category {
    Category {
        name,
        weight,
        nouns,
        style,
    }
}

/// Every category the generator emits, with its weight (they sum to
/// [`TOTAL_CATEGORY_WEIGHT`]). The order is fixed: it is part of the seeded output.
///
/// ```
/// use nearby_data::CATEGORIES;
///
/// assert!(CATEGORIES.len() >= 20);
/// assert!(CATEGORIES.iter().any(|c| c.name == "pharmacy"));
/// ```
#[rustfmt::skip]
pub const CATEGORIES: &[Category] = &[
    cat("restaurant", 1400, Style::Eatery, &[
        "Restaurant", "Bistro", "Kitchen", "Grill", "Diner", "Trattoria", "Brasserie", "Tavern",
        "Eatery", "Steakhouse", "Canteen", "Noodle House",
    ]),
    cat("fast_food", 700, Style::Eatery, &[
        "Burgers", "Fried Chicken", "Pizza", "Kebab", "Noodle Bar", "Tacos", "Snack Bar",
        "Sandwiches", "Dumplings",
    ]),
    cat("cafe", 800, Style::Eatery, &[
        "Cafe", "Coffee", "Coffee House", "Espresso Bar", "Tea House", "Roastery", "Tea Room",
    ]),
    cat("bar", 450, Style::Eatery, &["Bar", "Pub", "Lounge", "Tap Room", "Wine Bar", "Brewpub"]),
    cat("bakery", 300, Style::Eatery, &["Bakery", "Bakehouse", "Patisserie", "Bread Co."]),
    cat("grocery", 900, Style::Shop, &[
        "Grocery", "Mini Market", "Corner Store", "Food Store", "Convenience Store", "Provisions",
    ]),
    cat("supermarket", 350, Style::Brand, &[
        "Supermarket", "Market", "Foods", "Fresh Market", "Hypermarket",
    ]),
    cat("pharmacy", 400, Style::Practice, &["Pharmacy", "Chemist", "Drugstore", "Apothecary"]),
    cat("hotel", 250, Style::Brand, &["Hotel", "Inn", "Guesthouse", "Suites", "Lodge", "Hostel"]),
    cat("gas_station", 350, Style::Brand, &["Fuel", "Gas Station", "Petrol", "Service Station"]),
    cat("bank", 300, Style::Brand, &["Bank", "Savings Bank", "Credit Union", "Trust Bank"]),
    cat("atm", 350, Style::Atm, &["ATM"]),
    cat("clothing", 650, Style::Shop, &[
        "Fashion", "Boutique", "Apparel", "Clothing", "Outfitters", "Tailors",
    ]),
    cat("shoes", 150, Style::Shop, &["Shoes", "Footwear", "Shoe Store"]),
    cat("hardware", 150, Style::Shop, &["Hardware", "Tools", "Building Supplies", "DIY"]),
    cat("hairdresser", 500, Style::Shop, &["Hair Salon", "Barbershop", "Hair Studio", "Cuts"]),
    cat("beauty", 300, Style::Shop, &["Beauty Salon", "Nails", "Spa", "Beauty Studio"]),
    cat("gym", 150, Style::Brand, &["Gym", "Fitness", "Athletic Club", "Fitness Studio"]),
    cat("dentist", 200, Style::Practice, &[
        "Dental Clinic", "Dentistry", "Dental Care", "Orthodontics",
    ]),
    cat("doctor", 250, Style::Practice, &[
        "Medical Center", "Clinic", "Family Practice", "Health Center",
    ]),
    cat("school", 300, Style::Civic, &[
        "School", "Primary School", "High School", "Academy", "Elementary School",
    ]),
    cat("kindergarten", 150, Style::Civic, &["Kindergarten", "Nursery", "Preschool"]),
    cat("post_office", 100, Style::Post, &["Post Office"]),
    cat("car_repair", 350, Style::Shop, &[
        "Auto Repair", "Garage", "Motors", "Car Service", "Tyres",
    ]),
    cat("electronics", 150, Style::Shop, &["Electronics", "Mobile", "Computers", "Phone Shop"]),
    cat("furniture", 120, Style::Shop, &["Furniture", "Interiors", "Home Store"]),
    cat("florist", 100, Style::Shop, &["Flowers", "Florist", "Blooms"]),
    cat("butcher", 100, Style::Shop, &["Butcher", "Meats", "Butchery"]),
    cat("bookstore", 70, Style::Shop, &["Books", "Bookshop", "Book Store"]),
    cat("optician", 80, Style::Practice, &["Optician", "Eyewear", "Optics"]),
    cat("veterinary", 70, Style::Practice, &["Veterinary Clinic", "Animal Hospital", "Vet"]),
    cat("laundry", 100, Style::Shop, &["Laundry", "Dry Cleaners", "Laundromat"]),
];

/// The sum of all [`CATEGORIES`] weights.
///
/// ```
/// use nearby_data::{CATEGORIES, TOTAL_CATEGORY_WEIGHT};
///
/// assert_eq!(CATEGORIES.iter().map(|c| c.weight).sum::<u32>(), TOTAL_CATEGORY_WEIGHT);
/// ```
pub const TOTAL_CATEGORY_WEIGHT: u32 = {
    let mut sum = 0;
    let mut i = 0;
    while i < CATEGORIES.len() {
        sum += CATEGORIES[i].weight;
        i += 1;
    }
    sum
};

/// Cumulative weights, `CUMULATIVE[i]` = sum of the weights of categories `0..=i`.
const CUMULATIVE: [u32; CATEGORIES.len()] = {
    let mut out = [0; CATEGORIES.len()];
    let mut sum = 0;
    let mut i = 0;
    while i < CATEGORIES.len() {
        sum += CATEGORIES[i].weight;
        out[i] = sum;
        i += 1;
    }
    out
};

/// The category whose cumulative-weight interval holds `r`, for `r < TOTAL_CATEGORY_WEIGHT`.
pub(crate) fn pick(r: u32) -> usize {
    CUMULATIVE
        .partition_point(|&c| c <= r)
        .min(CATEGORIES.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_weighted() {
        for (i, c) in CATEGORIES.iter().enumerate() {
            assert!(c.weight > 0 && !c.nouns.is_empty());
            assert!(
                c.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                c.name
            );
            assert!(CATEGORIES[..i].iter().all(|d| d.name != c.name));
        }
    }

    #[test]
    fn pick_respects_boundaries() {
        assert_eq!(pick(0), 0);
        assert_eq!(pick(1399), 0);
        assert_eq!(pick(1400), 1);
        assert_eq!(pick(TOTAL_CATEGORY_WEIGHT - 1), CATEGORIES.len() - 1);
    }
}
