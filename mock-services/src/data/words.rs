//! Word lists the generators draw from.

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Klara",
    "Leon", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Samuel", "Tara", "Umar", "Vera",
    "William", "Xenia", "Yusuf", "Zoe",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Garcia",
    "Smith",
    "Rossi",
    "Dubois",
    "Novak",
    "Jansen",
    "Kowalski",
    "Andersson",
    "Silva",
    "Nguyen",
    "Okafor",
    "Tanaka",
    "Kim",
    "Brown",
    "Weber",
    "Fischer",
    "Martin",
    "Lopez",
];

pub(crate) const CITIES: &[(&str, &str, &str)] = &[
    ("Berlin", "DE", "de-DE"),
    ("Hamburg", "DE", "de-DE"),
    ("Munich", "DE", "de-DE"),
    ("Vienna", "AT", "de-AT"),
    ("Zurich", "CH", "de-CH"),
    ("Paris", "FR", "fr-FR"),
    ("Lyon", "FR", "fr-FR"),
    ("Amsterdam", "NL", "nl-NL"),
    ("Madrid", "ES", "es-ES"),
    ("Milan", "IT", "it-IT"),
    ("London", "GB", "en-GB"),
    ("Dublin", "IE", "en-IE"),
];

pub(crate) const STREETS: &[&str] = &[
    "Main Street",
    "Station Road",
    "Park Lane",
    "Market Square",
    "Mill Way",
    "Church Street",
    "Garden Row",
    "Harbour View",
    "Linden Avenue",
    "River Walk",
];

pub(crate) const SEGMENTS: &[&str] = &[
    "bargain_hunter",
    "loyal",
    "new",
    "premium",
    "dormant",
    "gift_buyer",
];

pub(crate) const CATEGORIES: &[&str] = &[
    "kitchen",
    "garden",
    "books",
    "electronics",
    "toys",
    "sports",
    "fashion",
    "beauty",
    "office",
    "pets",
];

/// Nouns per category, index-aligned with [`CATEGORIES`].
pub(crate) const NOUNS: &[&[&str]] = &[
    &[
        "Chef Knife",
        "Frying Pan",
        "Cutting Board",
        "Coffee Grinder",
        "Stock Pot",
        "Tea Kettle",
    ],
    &[
        "Garden Hose",
        "Pruning Shears",
        "Planter",
        "Watering Can",
        "Rake",
        "Bird Feeder",
    ],
    &[
        "Cookbook",
        "Novel",
        "Atlas",
        "Poetry Collection",
        "Field Guide",
        "Sketchbook",
    ],
    &[
        "Headphones",
        "Speaker",
        "Charger",
        "Keyboard",
        "Desk Lamp",
        "Webcam",
    ],
    &[
        "Puzzle",
        "Building Set",
        "Plush Bear",
        "Kite",
        "Board Game",
        "Toy Car",
    ],
    &[
        "Yoga Mat",
        "Water Bottle",
        "Running Shoes",
        "Dumbbell",
        "Tennis Racket",
        "Backpack",
    ],
    &[
        "Scarf",
        "Jacket",
        "Sneakers",
        "Beanie",
        "Belt",
        "Sunglasses",
    ],
    &[
        "Face Cream",
        "Shampoo",
        "Hair Brush",
        "Lip Balm",
        "Soap Bar",
        "Perfume",
    ],
    &[
        "Notebook",
        "Fountain Pen",
        "Stapler",
        "Desk Organizer",
        "Planner",
        "Monitor Stand",
    ],
    &[
        "Dog Bed", "Cat Tree", "Leash", "Pet Bowl", "Chew Toy", "Aquarium",
    ],
];

pub(crate) const ADJECTIVES: &[&str] = &[
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Elegant",
    "Essential",
    "Handcrafted",
    "Heavy-Duty",
    "Lightweight",
    "Modern",
    "Nordic",
    "Premium",
    "Rustic",
    "Smart",
    "Vintage",
    "Ultra",
];

pub(crate) const MATERIALS: &[&str] = &[
    "Bamboo",
    "Steel",
    "Oak",
    "Linen",
    "Ceramic",
    "Cotton",
    "Aluminium",
    "Leather",
    "Glass",
    "Recycled",
];

pub(crate) const COLOURS: &[&str] = &[
    "black", "white", "red", "blue", "green", "grey", "sand", "navy", "olive", "rose",
];

pub(crate) const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "one size"];

pub(crate) const BRANDS: &[&str] = &[
    "Acorn & Co",
    "Bluefjord",
    "Casa Verde",
    "Dunmore",
    "Elmstead",
    "Foxglove",
    "Granite Peak",
    "Helio",
    "Ironbark",
    "Juniper Lane",
];

pub(crate) const SENTENCES: &[&str] = &[
    "Designed for everyday use, it combines thoughtful details with a durable build that lasts for years.",
    "Every piece is inspected by hand before it leaves our workshop, so you receive it in perfect condition.",
    "The carefully chosen materials are sourced from certified suppliers who share our commitment to quality.",
    "Its timeless look fits effortlessly into any home, office or studio, whether modern or traditional.",
    "Cleaning is simple: wipe with a damp cloth and let it dry naturally, no special products required.",
    "We tested countless prototypes with real customers to get the proportions and the feel exactly right.",
    "Thanks to its clever design it packs away in seconds and takes up almost no space when not in use.",
    "It makes a wonderful gift for friends and family, and arrives in plastic-free recyclable packaging.",
    "Independent reviewers praised its balance of performance, comfort and value for money.",
    "A two-year warranty and our friendly customer service team have you covered if anything goes wrong.",
    "Small production runs mean every batch shows subtle variations that make your piece unique.",
    "The finish resists scratches, stains and fading, keeping it looking new through daily use.",
];

pub(crate) const TAGS: &[&str] = &[
    "bestseller",
    "new",
    "sale",
    "eco",
    "gift",
    "limited",
    "handmade",
    "premium",
    "bundle",
    "exclusive",
    "staff-pick",
    "trending",
];

pub(crate) const REVIEW_TITLES: &[&[&str]] = &[
    &[
        "Very disappointed",
        "Broke after a week",
        "Not as described",
    ],
    &["Not great", "Expected more", "Meh"],
    &["It's okay", "Does the job", "Average"],
    &["Really good", "Happy with it", "Solid purchase"],
    &["Absolutely love it", "Perfect!", "Best purchase this year"],
];

pub(crate) const REVIEW_BODIES: &[&str] = &[
    "Arrived quickly and well packaged.",
    "The quality is noticeably better than the cheaper alternatives I tried.",
    "Colour is slightly different from the photos.",
    "I have been using it daily for a month now.",
    "Customer service answered my question within a day.",
    "Would recommend to anyone looking for something reliable.",
    "Instructions could be clearer.",
    "Great value for the price.",
];

pub(crate) const REASONS: &[&str] = &[
    "bought_together",
    "viewed_together",
    "similar_items",
    "trending_in_category",
    "personalised",
];

pub(crate) const PAYMENT_METHODS: &[&str] = &["card", "card", "paypal", "invoice", "apple_pay"];

pub(crate) const ORDER_NOTES: &[&str] = &[
    "",
    "Customer called about delivery window.",
    "VIP - handle with care.",
    "Address verified manually by support.",
    "Refund requested for one item, pending review.",
    "Fraud check passed after manual review.",
];
