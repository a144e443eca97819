"""A deterministic synthetic hobby-products retailer (radio-controlled models).

``generate(...)`` returns the star-schema tables (see :mod:`helpers.data.schema`)
``fact_transactions, dim_customer, dim_product, dim_promotion,
customer_exposure`` of an invented RC-models retailer: vehicles (airplanes,
cars, helicopters, drones, boats), batteries, chargers, radios, electronics,
spare parts, workshop supplies and gear. ``dim_date`` is left to the data layer.

The data is built to be *learnable* (collaborative filtering must find signal):

* every customer has a Dirichlet preference over the five vehicle families
  (most customers focus on one or two), mildly tilted by demographics (drones
  younger, airplanes and boats older), a latent taste vector and a price
  sensitivity that depends on income;
* every product has a Zipf-like popularity inside its product type and a
  latent vector made of type, brand, family and noise components;
* a line picks a product group (vehicle, battery, parts, ...) and a family (the
  basket's family most of the time), then a product of that (group, family)
  cell: ``C`` candidates are drawn by inverse-CDF sampling on popularity and
  the one with the best ``affinity + price term + promotion lift + Gumbel``
  score wins (a sample of ``popularity x exp(score)``, never a dense customer x
  product matrix);
* consumables (batteries, parts, glue, paint, oil) are re-bought: a share of
  their lines uses hash-seeded ("habit") candidates, so the same customer keeps
  picking the same product; vehicles are one-off (duplicates are dropped);
* baskets after a customer's vehicle purchase lean towards that family;
* weekly pattern, a holiday peak (20 Nov - 31 Dec, vehicles more likely),
  heavy and light buyers, late joiners and churners, store opening hours;
* promotions (mailer, discount, display) lift the chance of being picked and
  discount the line; campaigns send coupons and redeemers come back to buy;
* about 0.5 % of lines are returns of earlier purchases.

Everything is vectorized and generated in chunks of customers, so 1M
customers x 50k products (~40M lines) fits in a few GiB. The same arguments
always give identical frames (only ``numpy.random.default_rng`` is used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import HOLIDAY_START, TABLES

__all__ = [
    "generate",
    "FAMILIES",
    "FAMILY_LABELS",
    "GROUPS",
    "CONSUMABLE_GROUPS",
    "PRODUCT_TYPES",
    "STORES",
    "ONLINE_STORE_ID",
    "product_type_families",
    "product_type_groups",
]

# --------------------------------------------------------------------------- #
# Catalogue specification
# --------------------------------------------------------------------------- #

FAMILIES = ("airplane", "car", "helicopter", "drone", "boat")
FAMILY_LABELS = {
    "airplane": "RC airplanes",
    "car": "RC cars",
    "helicopter": "RC helicopters",
    "drone": "drones",
    "boat": "RC boats",
}
N_FAM = len(FAMILIES)
ALL = FAMILIES

GROUPS = ("vehicle", "battery", "charger", "radio", "electronics", "parts", "supplies", "gear")
G_VEH, G_BAT, G_CHG, G_RAD, G_ELE, G_PAR, G_SUP, G_GEAR = range(len(GROUPS))
CONSUMABLE_GROUPS = ("battery", "parts", "supplies")

STORES = {
    1: "Downtown",
    2: "Riverside Mall",
    3: "Northgate",
    4: "Lakeside",
    5: "Airport Road",
    6: "Online",
}
ONLINE_STORE_ID = 6
N_PHYSICAL = 5


@dataclass(frozen=True)
class ProductType:
    department: str
    category: str
    product_type: str
    families: tuple[str, ...]
    group: str
    price: tuple[float, float]
    noun: str
    specs: tuple[str, ...]
    features: tuple[str, ...]
    packages: tuple[str, ...] = ("1 EA",)
    models: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()  # overrides the group's brand pool


T = ProductType

_AIR_FEATS = (
    "SAFE stabilization", "beginner friendly", "durable EPO foam airframe", "brushless power system",
    "BNF", "PNP", "RTR with 6-channel radio", "flaps", "retractable landing gear",
    "LED navigation lights", "scale details", "tricycle landing gear",
)
_CAR_FEATS = (
    "RTR", "waterproof electronics", "oil-filled shocks", "metal gear differentials", "LED light bar",
    "2.4 GHz radio", "aluminum chassis", "ball bearings throughout", "stability control",
    "painted body", "smart ESC", "high-torque steering servo",
)
_CAR_SPECS = ("1:10 brushless 4WD", "1:10 brushed 2WD", "1:8 brushless 4WD", "1:16 brushless 4WD",
              "1:10 brushed 4WD")
_HELI_FEATS = (
    "flybarless", "6-axis gyro stabilization", "altitude hold", "brushless main motor",
    "carbon fiber frame", "metal swashplate", "beginner friendly", "3D capable", "BNF", "RTR",
    "one-key return", "scale fuselage",
)
_DRONE_FEATS = (
    "4K camera", "GPS return to home", "HD digital video system", "carbon fiber frame",
    "obstacle avoidance", "brushless motors", "BNF", "3-axis gimbal", "30 minute flight time",
    "foldable arms", "analog FPV camera", "ducted prop guards", "follow me mode", "ELRS receiver",
)
_BOAT_FEATS = (
    "self-righting", "water-cooled brushless motor", "reverse function", "capsize recovery",
    "fiberglass hull", "low battery alarm", "RTR", "2.4 GHz radio", "twin motors",
    "stainless drive shaft", "scale deck details",
)
_LIPO_FEATS = (
    "XT60 connector", "XT90 connector", "EC5 connector", "Deans T-plug", "balance lead", "hard case",
    "soft case", "high discharge", "graphene cells", "long cycle life", "low internal resistance",
)
_NIMH_FEATS = ("Tamiya connector", "stick pack", "high capacity", "ready to use", "low self-discharge")
_PART_FEATS = ("OEM replacement", "direct fit", "high durability", "precision molded", "upgrade part")

PRODUCT_TYPES: tuple[ProductType, ...] = (
    # ---- vehicles --------------------------------------------------------
    T("Vehicles", "RC Airplanes", "Trainer Airplanes", ("airplane",), "vehicle", (110, 380),
      "trainer airplane", ("1.2 m wingspan", "1.4 m wingspan", "950 mm wingspan", "1.5 m high-wing"),
      _AIR_FEATS, models=("Apprentice", "Cloud Hopper", "Skylark", "Meadowlark", "First Flight")),
    T("Vehicles", "RC Airplanes", "Warbirds", ("airplane",), "vehicle", (160, 900), "warbird",
      ("1.1 m wingspan", "1.2 m wingspan", "1.5 m wingspan", "1.7 m wingspan"), _AIR_FEATS,
      models=("P-51 Mustang", "Spitfire Mk IX", "F4U Corsair", "P-47 Thunderbolt", "Hurricane")),
    T("Vehicles", "RC Airplanes", "Gliders", ("airplane",), "vehicle", (90, 450), "sailplane glider",
      ("2 m wingspan", "2.5 m wingspan", "1.5 m wingspan"),
      ("folding propeller", "V-tail", "thermal soaring", "electric motor glider", "hand launch",
       "flaperons", "lightweight balsa wing", "PNP"),
      models=("Thermal Queen", "Ridge Runner", "Zephyr", "Albatross")),
    T("Vehicles", "RC Airplanes", "EDF Jets", ("airplane",), "vehicle", (220, 900), "EDF jet",
      ("64 mm ducted fan", "70 mm ducted fan", "80 mm ducted fan", "90 mm ducted fan"), _AIR_FEATS,
      models=("F-16 Falcon", "Viper", "F-18 Hornet", "Sabre", "T-33 Shooting Star")),
    T("Vehicles", "RC Airplanes", "3D Aerobatic Airplanes", ("airplane",), "vehicle", (140, 600),
      "3D aerobatic airplane", ("1 m wingspan", "1.2 m wingspan", "1.5 m wingspan"), _AIR_FEATS,
      models=("Extra 300", "Edge 540", "Yak 54", "Slick 360")),
    T("Vehicles", "RC Cars", "Short Course Trucks", ("car",), "vehicle", (170, 550),
      "short course truck", _CAR_SPECS, _CAR_FEATS,
      models=("Ridgeback", "Dune Runner", "Outlaw SC", "Sidewinder", "Baja Raider")),
    T("Vehicles", "RC Cars", "Monster Trucks", ("car",), "vehicle", (150, 750), "monster truck",
      _CAR_SPECS + ("1:8 6S brushless 4WD",), _CAR_FEATS,
      models=("Stampede King", "Crusher", "Mammoth", "Ironjaw", "Big Rig")),
    T("Vehicles", "RC Cars", "Buggies", ("car",), "vehicle", (120, 550), "off-road buggy", _CAR_SPECS,
      _CAR_FEATS, models=("Hornet", "Scorpion", "Viper Buggy", "Dustdevil")),
    T("Vehicles", "RC Cars", "Rock Crawlers", ("car",), "vehicle", (140, 600), "rock crawler",
      ("1:10 brushed 4WD", "1:24 brushed 4WD", "1:18 brushed 4WD"),
      ("portal axles", "locking differentials", "scale body with roof rack", "two-speed transmission",
       "winch-ready bumper", "waterproof electronics", "RTR", "metal links"),
      models=("Trailblazer", "Goat Trail", "Summit", "Red Canyon")),
    T("Vehicles", "RC Cars", "Touring Cars", ("car",), "vehicle", (100, 420), "on-road touring car",
      ("1:10 brushless 4WD", "1:10 brushed 4WD"),
      ("belt drive", "carbon fiber chassis", "rubber radial tires", "adjustable camber",
       "oil-filled shocks", "RTR"), models=("Apex GT", "Circuit R", "Velocity TC")),
    T("Vehicles", "RC Cars", "Drift Cars", ("car",), "vehicle", (90, 380), "drift car",
      ("1:10 RWD", "1:10 brushless RWD", "1:24 RWD"),
      ("gyro-assisted steering", "hard plastic drift tires", "LED headlights", "painted body",
       "adjustable rear toe"), models=("Sideways S15", "Tokyo Slide", "Ronin Drift")),
    T("Vehicles", "RC Helicopters", "Coaxial Helicopters", ("helicopter",), "vehicle", (80, 160),
      "coaxial helicopter", ("indoor", "micro", "mini"),
      ("indoor flying", "coaxial rotors", "gyro stabilization", "beginner friendly", "USB charging",
       "RTR"), models=("Hummingbird", "Dragonfly", "Sparrow")),
    T("Vehicles", "RC Helicopters", "Fixed Pitch Helicopters", ("helicopter",), "vehicle", (100, 260),
      "fixed pitch helicopter", ("150 size", "200 size", "250 size"), _HELI_FEATS,
      models=("Hawkeye", "Kestrel", "Falcon FP")),
    T("Vehicles", "RC Helicopters", "Collective Pitch Helicopters", ("helicopter",), "vehicle",
      (250, 900), "collective pitch 3D helicopter", ("250 size", "450 size", "550 size", "700 size"),
      _HELI_FEATS, models=("Tempest", "Fury 3D", "Stormblade", "Nitrox")),
    T("Vehicles", "RC Helicopters", "Scale Helicopters", ("helicopter",), "vehicle", (280, 900),
      "scale helicopter", ("450 size", "500 size", "600 size"), _HELI_FEATS,
      models=("Bell 206 JetRanger", "UH-1 Huey", "AS350 Ecureuil", "EC135")),
    T("Vehicles", "Drones", "FPV Racing Drones", ("drone",), "vehicle", (160, 480), "FPV racing drone",
      ("5 inch", "3 inch", "7 inch long range", "4 inch"), _DRONE_FEATS,
      models=("Razorback", "Nitro Quad", "Apex 5", "Slipstream")),
    T("Vehicles", "Drones", "Camera Drones", ("drone",), "vehicle", (220, 900), "camera drone",
      ("foldable", "compact", "pro"), _DRONE_FEATS,
      models=("Skyview", "Horizon Pro", "Aurora 4K", "Panorama")),
    T("Vehicles", "Drones", "Cinewhoops", ("drone",), "vehicle", (150, 420), "cinewhoop drone",
      ("3 inch", "2.5 inch", "3.5 inch"), _DRONE_FEATS, models=("Whoopster", "Glide Cine", "Duct Hunter")),
    T("Vehicles", "Drones", "Mini Drones", ("drone",), "vehicle", (80, 180), "mini drone",
      ("palm-size", "tiny whoop", "65 mm"), _DRONE_FEATS, models=("Micro Bee", "Pocket Quad", "Gnat")),
    T("Vehicles", "RC Boats", "Deep-V Boats", ("boat",), "vehicle", (120, 450), "deep-V racing boat",
      ("24 inch", "30 inch", "36 inch"), _BOAT_FEATS, models=("Bluewater", "Wake Rider", "Torrent")),
    T("Vehicles", "RC Boats", "Catamarans", ("boat",), "vehicle", (200, 650), "catamaran speed boat",
      ("36 inch", "42 inch", "48 inch"), _BOAT_FEATS, models=("Twin Blade", "Riptide Cat", "Sea Arrow")),
    T("Vehicles", "RC Boats", "Hydroplanes", ("boat",), "vehicle", (220, 700), "hydroplane race boat",
      ("24 inch", "36 inch", "1 m"), _BOAT_FEATS, models=("Thunderbolt", "Miss Velocity", "Skimmer")),
    T("Vehicles", "RC Boats", "Sailboats", ("boat",), "vehicle", (110, 450), "RC sailboat",
      ("650 mm", "1 m class", "800 mm"),
      ("sail winch servo", "weighted keel", "ready to sail", "dacron sails", "carbon mast",
       "2.4 GHz radio"), models=("Seagull", "Regatta One", "Trade Wind")),
    T("Vehicles", "RC Boats", "Scale Boats", ("boat",), "vehicle", (180, 800), "scale boat",
      ("tugboat", "fishing trawler", "fire boat", "lifeboat"), _BOAT_FEATS,
      models=("Harbor Master", "Sea Scout", "Coastguard")),
    # ---- batteries --------------------------------------------------------
    T("Power", "Batteries", "Airplane LiPo Batteries", ("airplane",), "battery", (18, 90), "LiPo battery",
      ("3S 2200mAh 30C", "4S 3300mAh 50C", "3S 1300mAh 40C", "6S 5000mAh 50C", "4S 2200mAh 50C"),
      _LIPO_FEATS, ("1 EA", "2 PK")),
    T("Power", "Batteries", "Car LiPo Batteries", ("car",), "battery", (30, 90), "LiPo battery",
      ("2S 5000mAh 50C", "3S 5200mAh 60C", "4S 6700mAh 100C", "2S 4000mAh shorty"), _LIPO_FEATS,
      ("1 EA", "2 PK")),
    T("Power", "Batteries", "Car NiMH Batteries", ("car",), "battery", (15, 45), "NiMH battery pack",
      ("7.2V 3000mAh", "8.4V 4200mAh", "7.2V 5000mAh"), _NIMH_FEATS),
    T("Power", "Batteries", "Helicopter LiPo Batteries", ("helicopter",), "battery", (15, 90),
      "LiPo battery", ("1S 500mAh", "3S 2200mAh", "6S 3300mAh 35C", "6S 5000mAh"), _LIPO_FEATS,
      ("1 EA", "2 PK")),
    T("Power", "Batteries", "Drone LiPo Batteries", ("drone",), "battery", (15, 60), "LiPo battery",
      ("4S 1500mAh 120C", "6S 1100mAh 120C", "1S 450mAh HV", "4S 850mAh", "6S 1300mAh"),
      _LIPO_FEATS + ("XT30 connector", "BT2.0 connector"), ("1 EA", "2 PK", "4 PK")),
    T("Power", "Batteries", "Drone Flight Batteries", ("drone",), "battery", (45, 90),
      "intelligent flight battery", ("2450mAh", "3850mAh", "5000mAh"),
      ("battery level indicator", "self-discharge protection", "30 minute flight time",
       "long cycle life")),
    T("Power", "Batteries", "Boat LiPo Batteries", ("boat",), "battery", (35, 90), "LiPo battery",
      ("2S 5000mAh", "4S 5000mAh", "6S 8000mAh", "3S 6000mAh"), _LIPO_FEATS + ("waterproof",),
      ("1 EA", "2 PK")),
    T("Power", "Batteries", "Boat NiMH Batteries", ("boat",), "battery", (15, 40), "NiMH battery pack",
      ("7.2V 3000mAh", "9.6V 2000mAh"), _NIMH_FEATS),
    # ---- chargers ---------------------------------------------------------
    T("Power", "Chargers", "Balance Chargers", ALL, "charger", (30, 250), "LiPo balance charger",
      ("AC/DC 100W", "AC/DC 80W", "dual 2x100W", "DC 200W", "smart 150W"),
      ("LiPo/LiHV/NiMH/LiFe", "storage charge mode", "color LCD", "USB output",
       "internal resistance meter", "balance board")),
    T("Power", "Chargers", "Power Supplies", ALL, "charger", (50, 220), "DC power supply",
      ("350W 15A", "600W 25A", "1200W 50A"),
      ("fan cooled", "banana outputs", "XT60 output", "compact case")),
    T("Power", "Chargers", "Battery Accessories", ALL, "charger", (8, 40), "",
      ("LiPo battery checker", "parallel charging board", "charge lead set", "balance lead extension"),
      ("XT60 connector", "compact", "voltage display", "gold plated connectors")),
    # ---- radios -----------------------------------------------------------
    T("Electronics", "Radios", "Surface Transmitters", ("car", "boat"), "radio", (45, 450),
      "pistol grip transmitter", ("3-channel 2.4 GHz", "4-channel telemetry", "6-channel"),
      ("model memory", "telemetry display", "steering dual rate", "throttle trim",
       "receiver included", "failsafe")),
    T("Electronics", "Radios", "Air Transmitters", ("airplane", "helicopter", "drone"), "radio",
      (60, 500), "stick transmitter", ("6-channel", "8-channel", "12-channel", "16-channel ELRS"),
      ("hall gimbals", "telemetry", "model memory", "EdgeTX", "voice alerts", "receiver included",
       "trainer port")),
    T("Electronics", "Radios", "Receivers", ALL, "radio", (15, 70), "receiver",
      ("4-channel", "6-channel", "ELRS nano", "telemetry 8-channel"),
      ("diversity antennas", "failsafe", "SBUS output", "telemetry", "lightweight")),
    # ---- electronics ------------------------------------------------------
    T("Electronics", "Motors & ESCs", "Car Motors & ESCs", ("car",), "electronics", (30, 180),
      "", ("540 size 3300KV brushless motor", "540 size 4000KV brushless motor",
          "1:8 4274 2200KV brushless motor", "120A brushless ESC", "60A brushless ESC",
          "sensored 13.5T brushless motor"),
      ("waterproof", "programmable", "Deans plug", "high efficiency", "heat sink")),
    T("Electronics", "Motors & ESCs", "Airplane Motors & ESCs", ("airplane",), "electronics", (20, 120),
      "", ("2212 1400KV brushless outrunner", "3536 910KV brushless outrunner",
           "40A brushless ESC with BEC", "60A brushless ESC"), ("outrunner", "programmable", "switching BEC", "XT60 plug")),
    T("Electronics", "Motors & ESCs", "Helicopter Motors & ESCs", ("helicopter",), "electronics",
      (30, 180), "", ("3530 1600KV brushless heli motor", "450 size 3200KV brushless motor",
                      "80A governor ESC"),
      ("governor mode", "programmable", "high efficiency", "heat sink")),
    T("Electronics", "Motors & ESCs", "Drone Motors & ESCs", ("drone",), "electronics", (15, 150),
      "", ("2207 1950KV brushless motors", "1404 3800KV brushless motors", "45A 4-in-1 ESC",
           "F7 flight controller stack"), ("BLHeli_32", "DShot600", "N52 magnets",
                                                            "lightweight", "Betaflight")),
    T("Electronics", "Motors & ESCs", "Boat Motors & ESCs", ("boat",), "electronics", (30, 180),
      "", ("water-cooled 3660 brushless inrunner", "2040 size 4300KV brushless motor",
           "120A water-cooled ESC"),
      ("water-cooled", "waterproof", "reverse function", "programmable")),
    T("Electronics", "Servos", "Standard Servos", ("car", "airplane", "boat"), "electronics", (12, 90),
      "servo", ("digital standard 20 kg", "metal gear 25 kg", "high voltage 35 kg"),
      ("metal gears", "waterproof", "aluminum case", "high torque", "fast transit")),
    T("Electronics", "Servos", "Micro Servos", ("airplane", "helicopter"), "electronics", (8, 35),
      "micro servo", ("9 g", "digital 12 g", "sub-micro 5 g"),
      ("metal gears", "lightweight", "digital", "fast transit")),
    T("Electronics", "Servos", "Cyclic Servos", ("helicopter",), "electronics", (30, 90), "servo",
      ("digital cyclic", "brushless tail", "high speed cyclic"),
      ("metal gears", "high voltage", "precision centering")),
    T("Electronics", "FPV Equipment", "FPV Cameras & Video", ("drone",), "electronics", (20, 130),
      "FPV camera", ("micro 1200TVL", "HD digital", "nano"),
      ("low latency", "wide dynamic range", "5.8 GHz video transmitter", "adjustable output power")),
    # ---- spare parts ------------------------------------------------------
    T("Spare Parts", "Propellers", "Airplane Propellers", ("airplane",), "parts", (3, 15), "propeller",
      ("10x6 electric", "9x4.5 slow fly", "12x6 electric", "3-blade 8x5 scale", "11x7 glow"),
      ("balanced", "nylon composite", "carbon fiber", "includes adapters"),
      ("1 EA", "2 PCS", "4 PCS")),
    T("Spare Parts", "Landing Gear", "Airplane Landing Gear", ("airplane",), "parts", (6, 35),
      "landing gear", ("aluminum main", "tricycle", "tail wheel assembly", "foam wheels 2.5 inch"),
      _PART_FEATS),
    T("Spare Parts", "Hardware", "Airplane Linkages & Hardware", ("airplane",), "parts", (3, 15),
      "hardware set", ("control horn", "pushrod and clevis", "hinge", "wing bolt"), _PART_FEATS,
      ("10 PCS", "1 SET")),
    T("Spare Parts", "Airframe Parts", "Airplane Airframe Parts", ("airplane",), "parts", (12, 40),
      "replacement part", ("main wing set", "horizontal stabilizer", "fuselage", "canopy", "cowl"),
      _PART_FEATS),
    T("Spare Parts", "Tires & Wheels", "Car Tires & Wheels", ("car",), "parts", (12, 40), "tires",
      ("1:10 short course", "1:8 buggy", "2.2 inch crawler", "1:10 monster truck belted",
       "touring rubber"),
      ("foam inserts", "12 mm hex", "premounted on wheels", "soft compound", "all-terrain tread"),
      ("2 PCS", "4 PCS")),
    T("Spare Parts", "Gears & Drivetrain", "Car Gears & Drivetrain", ("car",), "parts", (5, 35), "",
      ("steel pinion gear 18T", "spur gear 86T", "hardened steel driveshafts", "front differential",
       "slipper clutch"), ("hardened steel", "precision cut", "direct fit", "long life")),
    T("Spare Parts", "Suspension", "Car Suspension Parts", ("car",), "parts", (6, 40),
      "suspension part", ("oil-filled shocks", "A-arms", "turnbuckles", "hub carriers", "sway bar kit"),
      ("aluminum", "composite", "threaded bodies", "adjustable"), ("2 PCS", "1 SET")),
    T("Spare Parts", "Body Shells", "Car Body Shells", ("car",), "parts", (18, 45), "body shell",
      ("clear polycarbonate", "painted short course", "scale crawler", "touring"),
      ("pre-cut", "window masks", "decal sheet", "1:10 scale")),
    T("Spare Parts", "Rotor Blades", "Main Rotor Blades", ("helicopter",), "parts", (8, 40),
      "main rotor blades", ("325 mm", "450 mm", "600 mm", "700 mm"),
      ("carbon fiber", "balanced pair", "3D symmetric"), ("2 PCS",)),
    T("Spare Parts", "Rotor Blades", "Tail Rotor Blades", ("helicopter",), "parts", (3, 15),
      "tail rotor blades", ("62 mm", "95 mm", "105 mm"), ("carbon fiber", "balanced pair"),
      ("2 PCS",)),
    T("Spare Parts", "Gears & Drivetrain", "Helicopter Gears", ("helicopter",), "parts", (4, 25),
      "", ("main gear 120T", "tail drive gear", "pinion gear 13T", "one-way bearing"),
      ("hardened steel", "Delrin", "precision cut")),
    T("Spare Parts", "Hardware", "Helicopter Hardware", ("helicopter",), "parts", (5, 40),
      "replacement part", ("metal swashplate", "feathering shaft", "tail boom", "skid landing gear",
                           "canopy"), _PART_FEATS),
    T("Spare Parts", "Propellers", "Drone Propellers", ("drone",), "parts", (3, 12), "props",
      ("5 inch tri-blade", "3 inch bi-blade", "7 inch long range", "40 mm whoop"),
      ("polycarbonate", "durable", "balanced", "2 CW + 2 CCW"), ("4 PCS", "8 PCS", "16 PCS")),
    T("Spare Parts", "Frames", "Drone Frames & Arms", ("drone",), "parts", (6, 40), "frame",
      ("5 inch freestyle", "replacement arm", "3 inch cinewhoop duct", "7 inch long range"),
      ("carbon fiber", "5 mm arms", "TPU mounts", "true X geometry")),
    T("Spare Parts", "Hardware", "Drone Hardware", ("drone",), "parts", (3, 12), "hardware kit",
      ("M3 screws", "standoffs", "TPU antenna mounts", "motor screws"), _PART_FEATS,
      ("10 PCS", "1 SET")),
    T("Spare Parts", "Propellers", "Boat Propellers", ("boat",), "parts", (5, 35), "boat propeller",
      ("stainless 2-blade", "3-blade racing", "x442 cleaver", "nylon 35 mm"),
      ("stainless steel", "balanced", "sharpened edges", "CNC machined")),
    T("Spare Parts", "Drive Parts", "Boat Drive Parts", ("boat",), "parts", (4, 30), "drive part",
      ("flex shaft", "stuffing tube", "drive dog", "motor coupler", "strut bearing"), _PART_FEATS),
    T("Spare Parts", "Hardware", "Boat Rudders & Hardware", ("boat",), "parts", (4, 35),
      "rudder hardware", ("aluminum rudder", "trim tabs", "turn fins", "hatch tape",
                          "cooling line kit"), _PART_FEATS),
    # ---- workshop supplies (consumables) -----------------------------------
    T("Workshop & Supplies", "Glue & Adhesives", "CA Glue", ALL, "supplies", (4, 14), "CA glue",
      ("thin", "medium", "thick", "foam-safe"),
      ("fast cure", "precision tip", "odorless", "bonds foam wood and plastic"),
      ("20 G", "50 G", "1 OZ"), brands=("GlueGenie", "BenchMate")),
    T("Workshop & Supplies", "Glue & Adhesives", "Epoxy", ALL, "supplies", (6, 18), "epoxy glue",
      ("5 minute", "30 minute", "laminating"), ("two-part", "high strength", "syringe"),
      ("2 OZ", "4 OZ"), brands=("GlueGenie", "BenchMate")),
    T("Workshop & Supplies", "Glue & Adhesives", "Threadlocker", ("car", "helicopter", "drone", "boat"),
      "supplies", (4, 10), "threadlocker", ("blue medium strength", "red high strength"),
      ("prevents loosening", "metal-to-metal"), ("10 ML",), brands=("GlueGenie", "Pitcrew")),
    T("Workshop & Supplies", "Paint", "Polycarbonate Spray Paint", ("car",), "supplies", (6, 14),
      "polycarbonate spray paint", ("fluorescent orange", "metallic blue", "black", "white",
                                    "candy red", "chrome silver"),
      ("for Lexan bodies", "flexible finish", "quick drying"), ("150 ML",),
      brands=("ColorCraft", "TrailHawk")),
    T("Workshop & Supplies", "Paint", "Acrylic Model Paint", ("airplane", "boat", "helicopter"),
      "supplies", (3, 9), "acrylic model paint", ("olive drab", "sky blue", "insignia red",
                                                  "flat white", "navy grey"),
      ("water based", "brush or airbrush", "matte finish"), ("17 ML", "30 ML"),
      brands=("ColorCraft",)),
    T("Workshop & Supplies", "Fluids", "Shock Oil & Diff Fluid", ("car",), "supplies", (5, 12),
      "silicone oil", ("30 wt shock", "40 wt shock", "10000 cst diff", "500 cst"),
      ("pure silicone", "consistent damping"), ("60 ML",), brands=("Pitcrew", "TrailHawk", "DirtVolt")),
    T("Workshop & Supplies", "Fluids", "Cleaning & Maintenance", ("car", "boat"), "supplies", (5, 15),
      "maintenance spray", ("motor cleaner", "bearing oil", "waterproof coating", "contact cleaner"),
      ("after run care", "prevents corrosion"), ("100 ML", "300 ML"), brands=("Pitcrew",)),
    # ---- workshop gear (durables) -------------------------------------------
    T("Workshop & Supplies", "Tools", "Hex Drivers", ALL, "gear", (8, 60), "hex driver set",
      ("1.5/2.0/2.5/3.0 mm", "metric 4-piece", "ball end"),
      ("hardened tips", "aluminum handles", "replaceable tips")),
    T("Workshop & Supplies", "Tools", "Pliers & Cutters", ALL, "gear", (6, 35), "",
      ("ball link pliers", "side cutters", "body reamer", "curved body scissors"),
      ("hardened steel", "ergonomic grip", "precision")),
    T("Workshop & Supplies", "Tools", "Soldering", ALL, "gear", (5, 120), "",
      ("60W soldering iron", "lead-free solder", "soldering station", "helping hands"),
      ("temperature control", "fine tip", "for connectors and wiring")),
    T("Workshop & Supplies", "Tools", "Setup Tools", ("airplane", "helicopter", "car", "drone"), "gear",
      (8, 60), "", ("pitch gauge", "CG balancer", "ride height gauge", "servo tester", "prop balancer"),
      ("precision setup", "aluminum", "digital display")),
    T("Workshop & Supplies", "Accessories", "Carry Bags & Cases", ALL, "gear", (20, 150), "",
      ("backpack", "hard case", "transmitter bag", "hauler bag"),
      ("padded", "waterproof", "foam inserts", "shoulder strap")),
    T("Workshop & Supplies", "Accessories", "LiPo Safety Bags", ALL, "gear", (8, 40), "LiPo safety bag",
      ("small", "large", "ammo box style"), ("fire resistant", "fiberglass", "charging and storage")),
    T("Workshop & Supplies", "Accessories", "FPV Goggles", ("drone",), "gear", (60, 450), "FPV goggles",
      ("box", "analog", "HD digital"), ("low latency", "DVR recording", "head tracking",
                                        "diversity receiver")),
    T("Workshop & Supplies", "Accessories", "Field Equipment", ("airplane", "helicopter"), "gear",
      (15, 120), "", ("field box", "starter kit", "wind sock", "launch pad"),
      ("portable", "flying field essential", "durable")),
    T("Workshop & Supplies", "Accessories", "LED Light Kits", ("car", "drone"), "gear", (8, 35),
      "LED light kit", ("8 LED", "light bar", "underglow"), ("plug and play", "bright", "waterproof")),
    T("Workshop & Supplies", "Accessories", "Boat Stands", ("boat",), "gear", (10, 40), "boat stand",
      ("adjustable", "folding", "padded"), ("fits most hulls", "aluminum", "non-scratch")),
)

# share of the catalogue per group (split evenly between the group's product types)
_GROUP_CATALOG_SHARE = np.array([0.14, 0.12, 0.04, 0.05, 0.10, 0.33, 0.12, 0.10])
_MARGIN = {  # margin range (fraction of price) per group
    "vehicle": (0.15, 0.30), "battery": (0.25, 0.40), "charger": (0.22, 0.38), "radio": (0.18, 0.32),
    "electronics": (0.25, 0.42), "parts": (0.38, 0.55), "supplies": (0.40, 0.55), "gear": (0.35, 0.52),
}

_VEHICLE_BRANDS = {
    "airplane": ("SkyForge", "AeroLark", "Windrider", "Bluecrest Aero"),
    "car": ("TrailHawk", "DirtVolt", "Torque Tribe", "Rockline"),
    "helicopter": ("RotorCraft Labs", "HeliNova", "Vortex Rotor"),
    "drone": ("Nimbus FPV", "Quadrix", "Hoverline", "Aerospecter"),
    "boat": ("Wavecutter", "AquaBolt", "Harbor Line"),
}
_GROUP_BRANDS = {
    "battery": ("VoltPeak", "CellMax", "Ampera", "ChargeWorks"),
    "charger": ("ChargeWorks", "VoltPeak", "Ampera"),
    "radio": ("Spektral", "FlySync", "Radionix"),
    "electronics": ("Spektral", "Castlemont", "Hobbytron", "KV Dynamics"),
    "parts": ("ProSpares", "MetalCore", "Hexon"),
    "supplies": ("GlueGenie", "ColorCraft", "Pitcrew"),
    "gear": ("BenchMate", "HexPro", "Pitcrew", "FieldReady"),
}
_FAMILY_SENTENCES = {
    "airplane": ("Great for weekend flying at the club field.",
                 "Made for smooth flying, scale looks and confident landings.",
                 "A favourite of park flyers and scale airplane pilots."),
    "car": ("Built for bashing at the skatepark and racing on the dirt track.",
            "Tough enough for backyard bashing, jumps and off-road trails.",
            "Ready for the racetrack, the trail and the dirt lot."),
    "helicopter": ("Stable hovering for beginners and crisp 3D flight for pilots.",
                   "Made for precise hovering and smooth forward flight.",
                   "A solid choice for helicopter pilots working on their hovering and 3D skills."),
    "drone": ("Built for freestyle, racing and cinematic FPV flight.",
              "Fly aerial video, racing gates and freestyle lines.",
              "A favourite of FPV pilots and aerial photographers."),
    "boat": ("Made for speed runs on the lake and pond racing.",
             "Cuts through chop on the lake with stable handling.",
             "For pond racing, lake cruising and scale boating."),
}
_GENERAL_SENTENCES = (
    "A workshop essential for every RC hobbyist.",
    "Keeps your models ready for the next session at the field or track.",
    "Trusted by RC hobbyists for building, repairs and maintenance.",
)

# --------------------------------------------------------------------------- #
# Behaviour parameters
# --------------------------------------------------------------------------- #

AGE_BANDS = ("19-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_P = np.array([0.10, 0.22, 0.24, 0.20, 0.15, 0.09])
INCOME_BANDS = ("Under 35K", "35-49K", "50-74K", "75-99K", "100-149K", "150K+")
# log-tilt of the family preference by age band (rows) and family (columns)
_AGE_TILT = np.array([
    # airplane  car   heli  drone  boat
    [-0.7, 0.30, -0.2, 0.90, -0.5],
    [-0.4, 0.40, 0.0, 0.60, -0.3],
    [0.0, 0.30, 0.2, 0.20, 0.0],
    [0.3, 0.00, 0.2, -0.20, 0.2],
    [0.6, -0.30, 0.1, -0.60, 0.4],
    [0.8, -0.60, 0.0, -0.90, 0.5],
])
_FEMALE_TILT = np.array([0.0, -0.15, -0.1, 0.3, 0.2])
_DIRICHLET_ALPHA = 0.35

_WEEKDAY_W = np.array([0.85, 0.80, 0.85, 0.95, 1.10, 1.55, 1.30])  # Mon..Sun
_HOLIDAY_W = 1.9
_SIZE_P = np.array([0.32, 0.26, 0.18, 0.12, 0.08, 0.04])  # basket size 1..6
_MEAN_SIZE = float((np.arange(1, 7) * _SIZE_P).sum())
# group mix of the lines of a regular basket, and of the extra lines of a vehicle basket
_GROUP_P = np.array([0.0, 0.17, 0.04, 0.04, 0.09, 0.38, 0.17, 0.11])
_GROUP_P_VEH = np.array([0.0, 0.36, 0.16, 0.10, 0.10, 0.12, 0.06, 0.10])
_HABIT = np.array([0.0, 0.65, 0.10, 0.05, 0.25, 0.55, 0.65, 0.05])  # share of habitual picks
_HABIT_SLOTS = 3
_RETURN_P = np.array([0.03, 0.007, 0.009, 0.009, 0.009, 0.005, 0.004, 0.007])
_QTY2_P = np.array([0.0, 0.35, 0.02, 0.0, 0.10, 0.35, 0.30, 0.05])  # P(quantity >= 2)
_QTY3_P = np.array([0.0, 0.10, 0.0, 0.0, 0.02, 0.12, 0.10, 0.0])  # P(one more unit)
_P_VEHICLE_BASKET = 0.05
_FIRST_BASKET_VEH = 3.0
_HOLIDAY_VEH = 2.5
_OWN_BOOST = 3.0  # family weight multiplier (1 + boost) once a vehicle of the family is owned
_BASKET_FAMILY_STICK = 0.8
_N_CAND = 8
_AFFINITY = 1.3
_K = 8  # latent dimensions
_CHUNK = 50_000

_HOURS_STORE = np.arange(10, 20)
_HOURS_STORE_W = np.array([0.6, 0.8, 1.1, 1.0, 0.8, 0.8, 1.0, 1.2, 1.1, 0.6])
_HOURS_ONLINE = np.arange(7, 24)
_HOURS_ONLINE_W = np.array([0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.8, 0.8, 0.9, 1.0, 1.1, 1.3, 1.4,
                            1.4, 1.1, 0.6])


def product_type_families() -> dict[str, tuple[str, ...]]:
    """``product_type -> families`` it fits (all five for general products)."""
    return {t.product_type: t.families for t in PRODUCT_TYPES}


def product_type_groups() -> dict[str, str]:
    """``product_type -> group`` (vehicle, battery, charger, radio, ...)."""
    return {t.product_type: t.group for t in PRODUCT_TYPES}


# --------------------------------------------------------------------------- #
# Small vectorized helpers
# --------------------------------------------------------------------------- #

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _hash_uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniforms in (0, 1) from integer keys (splitmix64)."""
    with np.errstate(over="ignore"):
        x = keys.astype(np.uint64) * _GOLDEN + np.uint64(salt)
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    u = (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return np.clip(u, 1e-12, 1 - 1e-12)


def _sample_rows(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise categorical sampling: index drawn from each row of ``weights``."""
    cs = np.cumsum(weights, axis=1)
    idx = (cs < (u * cs[:, -1])[:, None]).sum(axis=1)
    return np.minimum(idx, weights.shape[1] - 1)


def _pick(pool, idx: np.ndarray) -> np.ndarray:
    arr = np.empty(len(pool), dtype=object)
    arr[:] = list(pool)
    return arr[idx]


def _inverse_cdf(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from a cumulative weight vector ``cum`` (last value = total)."""
    return np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), len(cum) - 1)


# --------------------------------------------------------------------------- #
# Building blocks
# --------------------------------------------------------------------------- #


def _calendar(start: pd.Timestamp, n_days: int) -> dict:
    dates = start + pd.to_timedelta(np.arange(n_days), unit="D")
    weekday = dates.dayofweek.to_numpy()
    month, day = dates.month.to_numpy(), dates.day.to_numpy()
    hm, hd = HOLIDAY_START
    holiday = (month > hm) | ((month == hm) & (day >= hd))
    doy = dates.dayofyear.to_numpy()
    season = 1.0 + 0.12 * np.sin(2 * np.pi * (doy - 100) / 365.25)  # spring/summer flying season
    w = _WEEKDAY_W[weekday] * np.where(holiday, _HOLIDAY_W, 1.0) * season
    cum = np.concatenate([[0.0], np.cumsum(w)])
    return {"weekday": weekday, "holiday": holiday, "weight": w, "cum": cum, "n_days": n_days}


def _catalog(rng: np.random.Generator, n_products: int) -> tuple[dict, pd.DataFrame]:
    types = PRODUCT_TYPES
    n_types = len(types)
    g_of_type = np.array([GROUPS.index(t.group) for t in types])
    type_w = _GROUP_CATALOG_SHARE[g_of_type] / np.bincount(g_of_type, minlength=len(GROUPS))[g_of_type]
    type_w = type_w / type_w.sum()
    if n_products >= n_types:
        extra = rng.choice(n_types, size=n_products - n_types, p=type_w)
        ptype = np.concatenate([np.arange(n_types), extra])
    else:
        ptype = rng.choice(n_types, size=n_products, p=type_w)
    ptype = ptype[rng.permutation(n_products)]
    group = g_of_type[ptype]

    fam_mask_t = np.array([sum(1 << FAMILIES.index(f) for f in t.families) for t in types])
    first_fam_t = np.array([FAMILIES.index(t.families[0]) if len(t.families) == 1 else -1
                            for t in types])
    fam_mask = fam_mask_t[ptype]
    fam_single = first_fam_t[ptype]

    # ---- popularity: Zipf inside each product type --------------------------
    order = np.lexsort((rng.random(n_products), ptype))
    counts = np.bincount(ptype, minlength=n_types)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n_products, dtype=np.int64)
    rank[order] = np.arange(n_products) - np.repeat(starts, counts)
    pop = (rank + 1.5) ** -1.05
    pop = pop / np.bincount(ptype, weights=pop, minlength=n_types)[ptype]  # each type sums to 1
    pop = pop * rng.lognormal(0.0, 0.3, n_types)[ptype]

    # ---- price and margin -----------------------------------------------------
    lo = np.array([t.price[0] for t in types], dtype=float)[ptype]
    hi = np.array([t.price[1] for t in types], dtype=float)[ptype]
    raw = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    price = np.where(raw >= 10, np.floor(raw) + 0.99, np.floor(raw * 2) / 2 + 0.49)
    price_cents = np.round(price * 100).astype(np.int64)
    price = price_cents / 100.0
    m_lo = np.array([_MARGIN[GROUPS[g]][0] for g in range(len(GROUPS))])[group]
    m_hi = np.array([_MARGIN[GROUPS[g]][1] for g in range(len(GROUPS))])[group]
    margin = np.round(rng.uniform(m_lo, m_hi), 3)
    logp = np.log(price)
    gm = np.bincount(group, weights=logp, minlength=len(GROUPS)) / np.maximum(
        np.bincount(group, minlength=len(GROUPS)), 1)
    gv = np.bincount(group, weights=(logp - gm[group]) ** 2, minlength=len(GROUPS)) / np.maximum(
        np.bincount(group, minlength=len(GROUPS)), 1)
    price_z = ((logp - gm[group]) / np.sqrt(gv[group] + 1e-9)).astype(np.float32)

    # ---- brands ----------------------------------------------------------------
    brand_names: list[str] = []
    for f in FAMILIES:
        brand_names += [b for b in _VEHICLE_BRANDS[f] if b not in brand_names]
    for g in GROUPS[1:]:
        brand_names += [b for b in _GROUP_BRANDS[g] if b not in brand_names]
    brand_idx = np.empty(n_products, dtype=np.int64)
    for ti, t in enumerate(types):
        m = np.flatnonzero(ptype == ti)
        if m.size == 0:
            continue
        if t.brands:
            pool = t.brands
        elif t.group == "vehicle":
            pool = _VEHICLE_BRANDS[t.families[0]]
        elif t.group == "parts":
            pool = _VEHICLE_BRANDS[t.families[0]] + _GROUP_BRANDS["parts"]
        else:
            pool = _GROUP_BRANDS[t.group]
        bw = 1.0 / np.arange(1, len(pool) + 1) ** 0.8
        pick = rng.choice(len(pool), size=m.size, p=bw / bw.sum())
        brand_idx[m] = np.array([brand_names.index(b) for b in pool])[pick]
    manufacturer_id = 501 + brand_idx // 2  # a manufacturer owns one or two brands

    # ---- text --------------------------------------------------------------
    description = np.empty(n_products, dtype=object)
    package = np.empty(n_products, dtype=object)
    brand_arr = _pick(brand_names, brand_idx)
    for ti, t in enumerate(types):
        m = np.flatnonzero(ptype == ti)
        if m.size == 0:
            continue
        k = m.size
        spec = _pick(t.specs, rng.integers(0, len(t.specs), k))
        nf = len(t.features)
        i1 = rng.integers(0, nf, k)
        i2 = (i1 + 1 + rng.integers(0, max(nf - 1, 1), k)) % nf
        f1, f2 = _pick(t.features, i1), _pick(t.features, i2)
        noun = (" " + t.noun) if t.noun else ""
        if len(t.families) == 1:
            sentences = _FAMILY_SENTENCES[t.families[0]]
            for_text = FAMILY_LABELS[t.families[0]]
        else:
            sentences = _GENERAL_SENTENCES
            labels = [FAMILY_LABELS[f] for f in t.families]
            for_text = "all RC models" if len(t.families) == N_FAM else (
                ", ".join(labels[:-1]) + " and " + labels[-1])
        sent = _pick(sentences, rng.integers(0, len(sentences), k))
        if t.group == "vehicle":
            model = _pick(t.models, rng.integers(0, len(t.models), k))
            text = brand_arr[m] + " " + model + " " + spec + noun + ", " + f1 + ", " + f2 + ". " + sent
        else:
            text = (brand_arr[m] + " " + spec + noun + " for " + for_text + ", " + f1 + ", " + f2
                    + ". " + sent)
        description[m] = text
        package[m] = _pick(t.packages, rng.integers(0, len(t.packages), k))

    # ---- latent vectors ----------------------------------------------------
    fam_center = rng.normal(0, 1, (N_FAM, _K))
    type_center = rng.normal(0, 1, (n_types, _K))
    brand_center = rng.normal(0, 1, (len(brand_names), _K))
    bits = ((fam_mask[:, None] >> np.arange(N_FAM)) & 1).astype(float)
    fam_part = bits @ fam_center / bits.sum(axis=1, keepdims=True)
    V = (0.55 * type_center[ptype] + 0.45 * brand_center[brand_idx] + 0.5 * fam_part
         + 0.55 * rng.normal(0, 1, (n_products, _K)))
    V = (V / np.sqrt(_K)).astype(np.float32)

    dim_product = pd.DataFrame({
        "product_id": np.arange(100001, 100001 + n_products, dtype=np.int64),
        "department": _pick([t.department for t in types], ptype),
        "category": _pick([t.category for t in types], ptype),
        "product_type": _pick([t.product_type for t in types], ptype),
        "brand": brand_arr,
        "manufacturer_id": manufacturer_id.astype(np.int64),
        "description": description,
        "package_size": package,
        "unit_price": price.astype(np.float64),
        "margin": margin.astype(np.float64),
        "in_source_catalog": np.ones(n_products, dtype=bool),
    })

    # ---- (group, family) cells for inverse-CDF sampling ------------------------
    members, cums, lo_idx = [], [], []
    offset = 0
    for g in range(len(GROUPS)):
        in_g = group == g
        for f in range(N_FAM):
            mem = np.flatnonzero(in_g & (((fam_mask >> f) & 1) == 1))
            if mem.size == 0:
                mem = np.flatnonzero(in_g)
            if mem.size == 0:
                mem = np.arange(n_products)
            c = np.cumsum(pop[mem])
            cums.append(c / c[-1] + (g * N_FAM + f))
            members.append(mem)
            lo_idx.append(offset)
            offset += mem.size
    cell_lo = np.array(lo_idx, dtype=np.int64)
    cell_hi = np.append(cell_lo[1:], offset)
    cell_cum = np.concatenate(cums)
    # guide table: 2 buckets per member; guide[b] = first member whose cum exceeds the bucket start
    n_buckets = 2 * (cell_hi - cell_lo)
    guide_lo = np.concatenate([[0], np.cumsum(n_buckets)[:-1]])
    bcell = np.repeat(np.arange(cell_lo.size), n_buckets)
    bj = np.arange(bcell.size) - guide_lo[bcell]
    guide = np.searchsorted(cell_cum, bcell + bj / n_buckets[bcell], side="right")
    guide = np.minimum(guide, cell_hi[bcell] - 1)
    cat = {
        "n": n_products, "ptype": ptype, "group": group.astype(np.int8), "fam_mask": fam_mask,
        "fam_single": fam_single, "pop": pop, "price_cents": price_cents, "price_z": price_z,
        "V": V, "fam_center": fam_center,
        "cell_prod": np.concatenate(members).astype(np.int32), "cell_cum": cell_cum,
        "cell_lo": cell_lo, "cell_hi": cell_hi, "guide": guide, "guide_lo": guide_lo,
        "n_buckets": n_buckets,
    }
    return cat, dim_product


def _customers(rng: np.random.Generator, n: int, n_days: int, cat: dict) -> tuple[dict, pd.DataFrame]:
    age = rng.choice(len(AGE_BANDS), size=n, p=_AGE_P)
    female = rng.random(n) < 0.16
    # income rises with age up to 55-64
    inc_mu = np.array([1.2, 2.0, 2.6, 3.0, 3.0, 2.3])[age]
    income = np.clip(np.round(inc_mu + rng.normal(0, 1.2, n)), 0, len(INCOME_BANDS) - 1).astype(int)

    alpha = _DIRICHLET_ALPHA * np.exp(_AGE_TILT[age] + np.where(female[:, None], _FEMALE_TILT, 0.0))
    g = rng.standard_gamma(alpha)
    g = np.maximum(g, 1e-12)
    pref = g / g.sum(axis=1, keepdims=True)

    U = (0.85 * rng.normal(0, 1, (n, _K)) + 0.6 * (pref @ cat["fam_center"])).astype(np.float32)
    price_coef = (-0.75 + 0.16 * income + 0.05 * age + rng.normal(0, 0.25, n)).astype(np.float32)

    # tenure: most customers were there from the start, some join late, some churn
    late = rng.random(n) < 0.35
    join = np.where(late, rng.integers(0, max(int(n_days * 0.92), 1), n), 0)
    churn = rng.random(n) < 0.12
    span = np.maximum(n_days - join - 30, 1)
    leave = np.where(churn, join + 30 + (rng.random(n) * span).astype(int), n_days)
    leave = np.clip(leave, join + 1, n_days)

    deal = rng.beta(1.2, 3.0, n)
    rate = rng.lognormal(-0.5, 1.0, n) * (0.8 + 0.8 * deal)  # heavy and light buyers
    home = rng.choice(np.arange(1, N_PHYSICAL + 1), size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    online_p = np.clip(rng.beta(1.5, 4.5, n) * np.array([1.5, 1.3, 1.1, 0.9, 0.7, 0.5])[age], 0, 0.95)

    has = rng.random(n) >= 0.15
    married = rng.random(n) < np.array([0.1, 0.4, 0.6, 0.65, 0.65, 0.6])[age]
    kids = np.where(
        (age >= 1) & (age <= 3),
        rng.choice(4, size=n, p=[0.45, 0.2, 0.25, 0.1]),
        rng.choice(4, size=n, p=[0.85, 0.08, 0.05, 0.02]),
    )
    adults = np.where(married, 2, 1)
    size = np.minimum(adults + kids, 5)
    comp_code = np.where(married, np.where(kids > 0, 0, 1), np.where(kids > 0, 2, np.where(female, 3, 4)))
    comp = _pick(("2 Adults Kids", "2 Adults No Kids", "1 Adult Kids", "Single Female", "Single Male"),
                 comp_code)
    owner = rng.random(n) < np.array([0.1, 0.35, 0.6, 0.72, 0.8, 0.82])[age]

    def col(values, extra_null: float = 0.0) -> np.ndarray:
        v = np.asarray(values, dtype=object)
        keep = has & (rng.random(n) >= extra_null)
        return np.where(keep, v, None)

    dim_customer = pd.DataFrame({
        "customer_id": np.arange(1, n + 1, dtype=np.int64),
        "age_band": col(_pick(AGE_BANDS, age)),
        "gender": col(_pick(("M", "F"), female.astype(int))),
        "income_band": col(_pick(INCOME_BANDS, income)),
        "home_ownership": col(_pick(("Renter", "Homeowner"), owner.astype(int)), 0.06),
        "marital_status": col(_pick(("Unmarried", "Married"), married.astype(int)), 0.08),
        "household_size": col(_pick(("1", "2", "3", "4", "5+"), size - 1)),
        "household_comp": col(comp, 0.03),
        "kids_count": col(_pick(("0", "1", "2", "3+"), kids)),
        "has_demographics": has,
    })
    cust = {
        "n": n, "age": age, "income": income, "pref": pref, "U": U, "price_coef": price_coef,
        "join": join.astype(np.int64), "leave": leave.astype(np.int64), "deal": deal, "rate": rate,
        "home": home.astype(np.int8), "online_p": online_p,
    }
    return cust, dim_customer


def _promotions(rng: np.random.Generator, cat: dict, cal: dict, start: pd.Timestamp):
    n, n_days = cat["n"], cal["n_days"]
    n_weeks = (n_days + 6) // 7
    pw = cat["pop"] ** 0.6
    pw = pw / pw.sum()

    def draw(k: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.choice(n, size=k, p=pw), rng.integers(0, n_weeks, k) * 7

    frames = []
    # chain-wide weekly mailers
    k = max(int(round(0.010 * n * n_weeks)), n_weeks)
    prod, s = draw(k)
    pct = rng.choice([10, 15, 20, 25], size=k)
    frames.append(dict(product=prod, store=np.full(k, -1), start=s, end=s + 7, type="mailer",
                       detail=_pick(("front page", "interior page", "back page"),
                                    rng.integers(0, 3, k)), pct=pct))
    # chain-wide price discounts, one or two weeks
    k = max(int(round(0.006 * n * n_weeks)), n_weeks)
    prod, s = draw(k)
    pct = rng.choice([10, 15, 20, 30], size=k)
    frames.append(dict(product=prod, store=np.full(k, -1), start=s, end=s + 7 * rng.integers(1, 3, k),
                       type="discount", detail=_pick([f"{p}% off" for p in (10, 15, 20, 30)],
                                                     np.searchsorted([10, 15, 20, 30], pct)), pct=pct))
    # in-store displays (and the online home page), two weeks, no price cut
    k = max(int(round(0.005 * n * n_weeks * 6)), n_weeks)
    prod, s = draw(k)
    store = rng.integers(1, 7, k)
    loc = _pick(("end cap", "front of store", "counter", "window"), rng.integers(0, 4, k))
    loc = np.where(store == ONLINE_STORE_ID, "home page banner", loc).astype(object)
    frames.append(dict(product=prod, store=store, start=s, end=s + 14, type="display", detail=loc,
                       pct=np.zeros(k, dtype=int)))

    P = {key: np.concatenate([np.broadcast_to(np.asarray(f[key]), len(f["product"])) for f in frames])
         for key in ("product", "store", "start", "end", "type", "detail", "pct")}
    P["end"] = np.minimum(P["end"], n_days)
    keep = P["start"] < P["end"]
    P = {key: v[keep] for key, v in P.items()}
    # de-duplicate (product, store, start, type)
    tcode = np.searchsorted(np.array(["discount", "display", "mailer"]), P["type"].astype(str))
    key = ((P["product"].astype(np.int64) * 8 + (P["store"] + 1)) * (n_days + 1) + P["start"]) * 4 + tcode
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    P = {k2: v[first] for k2, v in P.items()}

    # bitmaps: bit s-1 = on promotion in store s; pct = best chain-wide price cut
    bits = np.zeros(n * n_days, dtype=np.uint8)
    pct_arr = np.zeros(n * n_days, dtype=np.uint8)
    dur = P["end"] - P["start"]
    rows = np.repeat(np.arange(dur.size), dur)
    days = P["start"][rows] + (np.arange(rows.size) - np.repeat(np.cumsum(dur) - dur, dur))
    flat = P["product"][rows].astype(np.int64) * n_days + days
    st = P["store"][rows]
    mask = np.where(st < 0, (1 << 6) - 1, 1 << np.maximum(st - 1, 0)).astype(np.uint8)
    np.bitwise_or.at(bits, flat, mask)
    np.maximum.at(pct_arr, flat, P["pct"][rows].astype(np.uint8))

    day0 = np.datetime64(start, "ns")
    one = np.timedelta64(1, "D").astype("m8[ns]")
    frame = pd.DataFrame({
        "product_id": (P["product"] + 100001).astype(np.int64),
        "store_id": pd.arrays.IntegerArray(np.maximum(P["store"], 0).astype(np.int64), P["store"] < 0),
        "start_date": day0 + P["start"] * one,
        "end_date": day0 + P["end"] * one,
        "promo_type": P["type"].astype(object),
        "detail": P["detail"].astype(object),
        "campaign_id": pd.arrays.IntegerArray(np.zeros(P["product"].size, dtype=np.int64),
                                              np.ones(P["product"].size, dtype=bool)),
    })
    return {"bits": bits, "pct": pct_arr}, frame


def _campaigns(rng: np.random.Generator, cat: dict, cal: dict, cust: dict, start: pd.Timestamp):
    n_days, n = cal["n_days"], cust["n"]
    n_camp = max(1, int(round(n_days / 30)))
    c_start = np.sort(rng.integers(0, max(n_days - 14, 1), n_camp))
    c_end = np.minimum(c_start + rng.integers(21, 43, n_camp), n_days)
    c_type = rng.choice(3, size=n_camp, p=[0.5, 0.3, 0.2])
    c_fam = rng.integers(0, N_FAM, n_camp)
    group = cat["group"]
    feat_lists = []
    for k in range(n_camp):  # a handful of campaigns
        ok = (group != G_VEH) & (((cat["fam_mask"] >> c_fam[k]) & 1) == 1)
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            cand = np.arange(cat["n"])
        m = min(15, cand.size)
        w = cat["pop"][cand] / cat["pop"][cand].sum()
        feat_lists.append(rng.choice(cand, size=m, replace=False, p=w))
    n_feat = max(len(f) for f in feat_lists)
    feats = np.full((n_camp, n_feat), -1, dtype=np.int64)
    n_feat_k = np.array([len(f) for f in feat_lists])
    for k, f in enumerate(feat_lists):
        feats[k, : len(f)] = f
    coupon_pct = rng.choice([15, 20, 25], size=n_camp)

    pref = cust["pref"]
    rec_c, rec_k, red_c, red_k, red_day, red_j = [], [], [], [], [], []
    for k in range(n_camp):
        base = np.array([0.05, 0.15, 0.35])[c_type[k]]
        slope = np.array([0.6, 0.3, 0.0])[c_type[k]]
        p = base + slope * pref[:, c_fam[k]]
        active = (cust["join"] < c_end[k]) & (cust["leave"] > c_start[k])
        got = np.flatnonzero(active & (rng.random(n) < p))
        rec_c.append(got)
        rec_k.append(np.full(got.size, k))
        n_red = rng.poisson(1.6 * cust["deal"][got])
        rc = np.repeat(got, n_red)
        lo = np.maximum(c_start[k], cust["join"][rc])
        hi = np.minimum(c_end[k], cust["leave"][rc])
        ok = hi > lo
        rc, lo, hi = rc[ok], lo[ok], hi[ok]
        red_c.append(rc)
        red_k.append(np.full(rc.size, k))
        red_day.append(lo + (rng.random(rc.size) * (hi - lo)).astype(np.int64))
        red_j.append((rng.random(rc.size) * n_feat_k[k]).astype(np.int64))
    rec_c, rec_k = np.concatenate(rec_c), np.concatenate(rec_k)
    red_c, red_k = np.concatenate(red_c), np.concatenate(red_k)
    red_day, red_j = np.concatenate(red_day), np.concatenate(red_j)
    o = np.lexsort((red_day, red_c))
    red = {"cust": red_c[o], "camp": red_k[o], "day": red_day[o], "j": red_j[o]}
    red["product"] = feats[red["camp"], red["j"]]
    red["coupon_id"] = (red["camp"] + 1) * 1000 + red["j"] + 1

    day0 = np.datetime64(start, "ns")
    one = np.timedelta64(1, "D").astype("m8[ns]")
    exp = pd.DataFrame({
        "customer_id": np.concatenate([rec_c, red["cust"]]).astype(np.int64) + 1,
        "event": np.concatenate([np.full(rec_c.size, "campaign_received", dtype=object),
                                 np.full(red["cust"].size, "coupon_redeemed", dtype=object)]),
        "campaign_id": np.concatenate([rec_k, red["camp"]]).astype(np.int64) + 1,
        "date": day0 + np.concatenate([c_start[rec_k], red["day"]]) * one,
        "coupon_id": pd.arrays.IntegerArray(
            np.concatenate([np.zeros(rec_c.size, np.int64), red["coupon_id"]]).astype(np.int64),
            np.concatenate([np.ones(rec_c.size, bool), np.zeros(red["cust"].size, bool)])),
    })
    exp = exp.sort_values(["customer_id", "date", "event", "campaign_id"], kind="stable")
    exp = exp.reset_index(drop=True)

    # campaign rows of dim_promotion: the featured products, chain-wide
    kk = np.repeat(np.arange(n_camp), n_feat_k)
    pp = np.concatenate(feat_lists)
    promo = pd.DataFrame({
        "product_id": (pp + 100001).astype(np.int64),
        "store_id": pd.arrays.IntegerArray(np.zeros(pp.size, np.int64), np.ones(pp.size, bool)),
        "start_date": day0 + c_start[kk] * one,
        "end_date": day0 + c_end[kk] * one,
        "promo_type": np.full(pp.size, "campaign", dtype=object),
        "detail": _pick(("TypeA", "TypeB", "TypeC"), c_type[kk]),
        "campaign_id": pd.array((kk + 1).astype(np.int64), dtype="Int64"),
    })
    return {"red": red, "coupon_pct": coupon_pct}, exp, promo


# --------------------------------------------------------------------------- #
# One chunk of customers
# --------------------------------------------------------------------------- #


def _time_of_day(rng: np.random.Generator, online: np.ndarray) -> np.ndarray:
    m = online.size
    hs = _HOURS_STORE[_inverse_cdf(np.cumsum(_HOURS_STORE_W), rng.random(m))]
    ho = _HOURS_ONLINE[_inverse_cdf(np.cumsum(_HOURS_ONLINE_W), rng.random(m))]
    return np.where(online, ho, hs) * 3600 + rng.integers(0, 3600, m)


def _draw_in_cell(cat: dict, cell: np.ndarray, u: np.ndarray, g_lo: np.ndarray, g_n: np.ndarray,
                  c_hi: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw inside each line's cell (guide table + short forward scan).

    Equivalent to ``searchsorted(cell_cum, cell + u, side="right")`` clipped to the
    cell, but O(1) on average instead of a cache-unfriendly binary search.
    """
    cum = cat["cell_cum"]
    q = cell + u
    b = np.minimum((u * g_n).astype(np.int64), g_n - 1)
    idx = cat["guide"][g_lo + b]
    act = np.flatnonzero(cum[idx] <= q)
    while act.size:  # a few steps: a bucket holds about two members
        idx[act] += 1
        act = act[cum[np.minimum(idx[act], cum.size - 1)] <= q[act]]
        act = act[idx[act] < c_hi[act] - 1]
    return np.minimum(idx, c_hi - 1)


def _chunk(rng: np.random.Generator, c0: int, c1: int, cat: dict, cust: dict, cal: dict,
           promo: dict, camp: dict, lam: np.ndarray, salt: int) -> dict:
    n = c1 - c0
    n_days = cal["n_days"]
    n_prod = cat["n"]
    pref = cust["pref"][c0:c1]
    join, leave = cust["join"][c0:c1], cust["leave"][c0:c1]

    # ---- baskets ------------------------------------------------------------------
    nb = 1 + rng.poisson(lam[c0:c1])
    bc = np.repeat(np.arange(n), nb)
    cum = cal["cum"]
    lo, hi = cum[join[bc]], cum[leave[bc]]
    day = np.searchsorted(cum, lo + rng.random(bc.size) * (hi - lo), side="right") - 1
    day = np.clip(day, join[bc], leave[bc] - 1)
    red = camp["red"]
    r0, r1 = np.searchsorted(red["cust"], [c0, c1])
    b_cust = np.concatenate([bc, red["cust"][r0:r1] - c0])
    b_day = np.concatenate([day, red["day"][r0:r1]])
    b_red = np.concatenate([np.full(bc.size, -1), np.arange(r0, r1)])  # redemption index
    nbk = b_cust.size
    online = rng.random(nbk) < cust["online_p"][c0 + b_cust]
    other = rng.random(nbk) < 0.08
    store = np.where(online, ONLINE_STORE_ID,
                     np.where(other, rng.integers(1, N_PHYSICAL + 1, nbk), cust["home"][c0 + b_cust]))
    sec = _time_of_day(rng, online)
    o = np.argsort((b_cust * (n_days + 1) + b_day) * 86400 + sec, kind="stable")
    b_cust, b_day, b_red, store, sec = b_cust[o], b_day[o], b_red[o], store[o], sec[o]
    idx = np.arange(nbk)
    first = np.r_[True, b_cust[1:] != b_cust[:-1]]
    rank = idx - np.maximum.accumulate(np.where(first, idx, 0))

    # vehicle baskets, basket family
    p_veh = (_P_VEHICLE_BASKET * np.where(cal["holiday"][b_day], _HOLIDAY_VEH, 1.0)
             * np.where(rank == 0, _FIRST_BASKET_VEH, 1.0))
    is_veh = (rng.random(nbk) < p_veh) & (b_red < 0)
    pref_b = pref[b_cust]
    veh_f = _sample_rows(pref_b, rng.random(nbk))
    vkey = b_cust[is_veh] * N_FAM + veh_f[is_veh]
    first_day = np.full(n * N_FAM, n_days + 1, dtype=np.int64)
    uk, ui = np.unique(vkey, return_index=True)
    first_day[uk] = b_day[is_veh][ui]
    owned = b_day[:, None] > first_day.reshape(n, N_FAM)[b_cust]
    fam_other = _sample_rows(pref_b * (1.0 + _OWN_BOOST * owned), rng.random(nbk))
    del owned, pref_b
    b_fam = np.where(is_veh, veh_f, fam_other)

    # ---- lines ------------------------------------------------------------------
    size = 1 + _inverse_cdf(np.cumsum(_SIZE_P), rng.random(nbk))
    lb = np.repeat(idx, size)
    nl = lb.size
    pos = np.arange(nl) - np.repeat(np.cumsum(size) - size, size)
    lc = b_cust[lb]
    lday = b_day[lb]
    lstore = store[lb]
    veh_b = is_veh[lb]
    g_reg = _inverse_cdf(np.cumsum(_GROUP_P), rng.random(nl))
    g_veh = _inverse_cdf(np.cumsum(_GROUP_P_VEH), rng.random(nl))
    grp = np.where(veh_b, g_veh, g_reg)
    first_veh = veh_b & (pos == 0)
    grp[first_veh] = G_VEH
    redraw = (rng.random(nl) >= _BASKET_FAMILY_STICK) & ~first_veh
    lfam = b_fam[lb].copy()
    ri = np.flatnonzero(redraw)
    lfam[ri] = _sample_rows(pref[lc[ri]], rng.random(ri.size))
    cell = grp * N_FAM + lfam

    habit = rng.random(nl) < _HABIT[grp]
    hi_idx = np.flatnonzero(habit)
    slot = rng.integers(0, _HABIT_SLOTS, hi_idx.size)
    hkey = ((c0 + lc[hi_idx]).astype(np.int64) * 64 + cell[hi_idx]) * _HABIT_SLOTS + slot

    Uc = cust["U"][c0 + lc]
    pcoef = cust["price_coef"][c0 + lc]
    storebit = (np.uint8(1) << (lstore - 1).astype(np.uint8)).astype(np.uint8)
    flat_day = lday.astype(np.int64)
    g_lo, g_n, c_hi = cat["guide_lo"][cell], cat["n_buckets"][cell], cat["cell_hi"][cell]
    best = np.full(nl, -np.inf, dtype=np.float32)
    prod = np.zeros(nl, dtype=np.int64)
    for c in range(_N_CAND):  # a handful of candidates per line
        u = rng.random(nl)
        expo = rng.standard_exponential(nl, dtype=np.float32)
        score = -np.log(np.maximum(expo, np.float32(1e-30), out=expo))  # Gumbel noise
        if hi_idx.size:
            hk = hkey * _N_CAND + c
            u[hi_idx] = _hash_uniform(hk, salt)
            score[hi_idx] = -np.log(-np.log(_hash_uniform(hk, salt + 1)))
        cand = cat["cell_prod"][_draw_in_cell(cat, cell, u, g_lo, g_n, c_hi)].astype(np.int64)
        score += _AFFINITY * np.einsum("ij,ij->i", Uc, cat["V"][cand])
        score += pcoef * cat["price_z"][cand]
        fi = cand * n_days + flat_day
        on = (promo["bits"][fi] & storebit) != 0
        score += np.where(on, 1.0 + promo["pct"][fi] / 40.0, 0.0).astype(np.float32)
        better = score > best
        best = np.where(better, score, best)
        prod = np.where(better, cand, prod)
    del Uc, best

    # coupon baskets: the first line is the coupon's product
    cl = np.flatnonzero((b_red[lb] >= 0) & (pos == 0))
    rix = b_red[lb[cl]]
    prod[cl] = red["product"][rix]
    grp[cl] = cat["group"][prod[cl]]
    coupon_pct = np.zeros(nl, dtype=np.int64)
    coupon_pct[cl] = camp["coupon_pct"][red["camp"][rix]]

    # vehicles are one-off: keep the first purchase of each (customer, vehicle)
    vi = np.flatnonzero(grp == G_VEH)
    vk = lc[vi].astype(np.int64) * n_prod + prod[vi]
    _, keep_first = np.unique(vk, return_index=True)
    drop = np.ones(vi.size, dtype=bool)
    drop[keep_first] = False
    keep = np.ones(nl, dtype=bool)
    keep[vi[drop]] = False
    lb, lc, lday, lstore, prod, grp, coupon_pct = (
        a[keep] for a in (lb, lc, lday, lstore, prod, grp, coupon_pct))
    nl = lb.size

    # ---- quantities, prices and discounts -------------------------------------
    qty = (1 + (rng.random(nl) < _QTY2_P[grp]) + (rng.random(nl) < _QTY3_P[grp])).astype(np.int64)
    gross = qty * cat["price_cents"][prod]
    fi = prod * n_days + lday
    on_promo = (promo["bits"][fi] & (np.uint8(1) << (lstore - 1).astype(np.uint8))) != 0
    retail = np.where(on_promo, np.round(gross * promo["pct"][fi] / 100.0), 0).astype(np.int64)
    coupon = np.round(gross * coupon_pct / 100.0).astype(np.int64)
    match = np.where((coupon > 0) & (rng.random(nl) < 0.3), coupon // 2, 0)

    # ---- returns of earlier, undiscounted purchases -------------------------------
    elig = (retail == 0) & (coupon == 0)
    ret = np.flatnonzero(elig & (rng.random(nl) < _RETURN_P[grp]))
    rday = lday[ret] + 1 + rng.integers(0, 30, ret.size)
    ok = rday < np.minimum(leave[lc[ret]] + 14, n_days)
    ret, rday = ret[ok], rday[ok]
    rq = np.where((qty[ret] > 1) & (rng.random(ret.size) < 0.5), 1, qty[ret])
    nr = ret.size
    r_sec = _time_of_day(rng, lstore[ret] == ONLINE_STORE_ID)

    line_sec = sec[lb]
    all_c = np.concatenate([lc, lc[ret]])
    all_day = np.concatenate([lday, rday])
    all_sec = np.concatenate([line_sec, r_sec])
    all_b = np.concatenate([lb, nbk + np.arange(nr)])
    tkey = (all_c.astype(np.int64) * (n_days + 1) + all_day) * 86400 + all_sec
    order = np.argsort(tkey, kind="stable")
    sb = all_b[order]
    bid = np.cumsum(np.r_[True, sb[1:] != sb[:-1]]).astype(np.int64)  # 1-based, in time order

    def cat_(a, b, dtype):
        return np.concatenate([a, b]).astype(dtype)[order]

    return {
        "basket": bid,
        "n_baskets": int(bid[-1]) if bid.size else 0,
        "customer": (all_c[order] + c0 + 1).astype(np.int32),
        "product": cat_(prod, prod[ret], np.int32),
        "store": cat_(lstore, lstore[ret], np.int8),
        "seconds": all_day[order].astype(np.int64) * 86400 + all_sec[order],
        "qty": cat_(qty, -rq, np.int16),
        "gross": cat_(gross, -rq * cat["price_cents"][prod[ret]], np.int32),
        "retail": cat_(retail, np.zeros(nr, np.int64), np.int32),
        "coupon": cat_(coupon, np.zeros(nr, np.int64), np.int32),
        "match": cat_(match, np.zeros(nr, np.int64), np.int32),
        "on_promo": cat_(on_promo, np.zeros(nr, bool), bool),
        "is_return": cat_(np.zeros(nl, bool), np.ones(nr, bool), bool),
    }


_COMPACT = {  # compact dtypes of the chunk columns kept until the end
    "basket": np.int64, "customer": np.int32, "product": np.int32, "store": np.int8,
    "seconds": np.int64, "qty": np.int16, "gross": np.int32, "retail": np.int32, "coupon": np.int32,
    "match": np.int32, "on_promo": np.bool_, "is_return": np.bool_,
}


class _Sink:
    """Compact column buffers the chunks append to.

    The buffers are allocated once from an estimate of the number of lines (and
    grown if needed), so the long-lived data lives in a few large allocations and
    the per-chunk temporaries are given back to the system: the peak stays close
    to the final frame plus this compact copy.
    """

    def __init__(self, capacity: int, basket_dtype, seconds_dtype) -> None:
        self.size = 0
        self.n_baskets = 0
        dtypes = dict(_COMPACT, basket=basket_dtype, seconds=seconds_dtype)
        self.cols = {k: np.empty(max(capacity, 1), dtype=d) for k, d in dtypes.items()}

    def append(self, part: dict) -> None:
        m = part["customer"].size
        cap = next(iter(self.cols.values())).size
        if self.size + m > cap:  # rare: grow by a quarter at least
            new = max(self.size + m, int(cap * 1.25))
            for k, v in self.cols.items():
                grown = np.empty(new, dtype=v.dtype)
                grown[: self.size] = v[: self.size]
                self.cols[k] = grown
        part["basket"] = part["basket"] + self.n_baskets
        for k, v in self.cols.items():
            v[self.size: self.size + m] = part[k]
        self.size += m
        self.n_baskets += part["n_baskets"]


def _assemble(sink: _Sink, start: pd.Timestamp, block: int = 4_000_000) -> pd.DataFrame:
    """Convert the compact buffers into the final schema dtypes, one column at a time.

    Conversions run in blocks of rows, and each compact buffer is freed as soon as
    the last final column using it is built.
    """
    total = sink.size
    c = sink.cols
    start_ns = int(np.datetime64(start, "ns").astype(np.int64))
    day_ns = 86400 * 1_000_000_000

    def fill(dtype, fn, free: tuple[str, ...] = ()) -> np.ndarray:
        out = np.empty(total, dtype=dtype)
        for a in range(0, total, block):
            b = min(a + block, total)
            out[a:b] = fn(slice(a, b))
        for key in free:
            del c[key]
        return out

    def i64(key: str, sl: slice) -> np.ndarray:
        return c[key][sl].astype(np.int64)

    cols: dict[str, np.ndarray] = {}
    cols["basket_id"] = fill(np.int64, lambda sl: c["basket"][sl], ("basket",))
    cols["customer_id"] = fill(np.int64, lambda sl: c["customer"][sl], ("customer",))
    cols["product_id"] = fill(np.int64, lambda sl: i64("product", sl) + 100001, ("product",))
    cols["store_id"] = fill(np.int64, lambda sl: c["store"][sl], ("store",))
    cols["timestamp"] = fill(np.int64, lambda sl: i64("seconds", sl) * 1_000_000_000 + start_ns
                             ).view("M8[ns]")
    cols["date"] = fill(np.int64, lambda sl: (i64("seconds", sl) // 86400) * day_ns + start_ns,
                        ("seconds",)).view("M8[ns]")
    cols["quantity"] = fill(np.float64, lambda sl: c["qty"][sl], ("qty",))
    cols["sales_value"] = fill(
        np.float64,
        lambda sl: (i64("gross", sl) - c["retail"][sl] - c["coupon"][sl] - c["match"][sl]) / 100.0,
        ("gross",))
    cols["retail_disc"] = fill(np.float64, lambda sl: c["retail"][sl] / 100.0)
    cols["coupon_disc"] = fill(np.float64, lambda sl: c["coupon"][sl] / 100.0)
    cols["coupon_match_disc"] = fill(np.float64, lambda sl: c["match"][sl] / 100.0)
    cols["discount"] = fill(
        np.float64, lambda sl: (i64("retail", sl) + c["coupon"][sl] + c["match"][sl]) / 100.0,
        ("retail", "coupon", "match"))
    cols["on_promotion"] = fill(bool, lambda sl: c["on_promo"][sl], ("on_promo",))
    cols["is_return"] = fill(bool, lambda sl: c["is_return"][sl], ("is_return",))
    return pd.DataFrame(cols, copy=False)  # no copy, no block consolidation


# --------------------------------------------------------------------------- #
# Public entry point
# --------------------------------------------------------------------------- #


def generate(
    n_customers: int = 5000,
    n_products: int = 2000,
    n_days: int = 365,
    seed: int = 0,
    start_date: str = "2023-01-01",
    lines_per_customer: float = 40.0,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Generate the synthetic RC-hobby retailer.

    Returns ``{"fact_transactions", "dim_customer", "dim_product", "dim_promotion",
    "customer_exposure"}`` with the columns and dtypes of :mod:`helpers.data.schema`
    (``dim_date`` is derived by the data layer). Customers are ``1..n_customers``,
    products ``100001..``; the same arguments always give identical frames.
    """
    if n_customers < 1 or n_products < 1 or n_days < 1:
        raise ValueError("n_customers, n_products and n_days must be >= 1")
    if lines_per_customer <= 0:
        raise ValueError("lines_per_customer must be > 0")
    n_customers, n_products, n_days = int(n_customers), int(n_products), int(n_days)
    start = pd.Timestamp(start_date).normalize()
    rng = np.random.default_rng(seed)
    salt = int(rng.integers(0, 2**62))

    cal = _calendar(start, n_days)
    cat, dim_product = _catalog(rng, n_products)
    cust, dim_customer = _customers(rng, n_customers, n_days, cat)
    promo, dim_promotion = _promotions(rng, cat, cal, start)
    camp, exposure, camp_promo = _campaigns(rng, cat, cal, cust, start)
    dim_promotion = pd.concat([dim_promotion, camp_promo], ignore_index=True)
    dim_promotion = dim_promotion.sort_values(
        ["start_date", "promo_type", "product_id"], kind="stable").reset_index(drop=True)

    # expected regular baskets per customer so that lines ~ lines_per_customer on average
    active = (cust["leave"] - cust["join"]) / n_days
    w = cust["rate"] * active
    n_red = camp["red"]["cust"].size
    target = n_customers * lines_per_customer / _MEAN_SIZE - n_customers - n_red
    lam = w * max(target, 0.0) / w.sum()

    bounds = list(range(0, n_customers, _CHUNK)) + [n_customers]
    steps = range(len(bounds) - 1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="synthetic", unit="chunk")
    est_baskets = float(n_customers + lam.sum() + n_red)
    sink = _Sink(
        capacity=int(est_baskets * _MEAN_SIZE * 1.03 + 20 * np.sqrt(est_baskets) + 1000),
        basket_dtype=np.int32 if est_baskets * 1.1 + 1e6 < 2**31 else np.int64,
        seconds_dtype=np.int32 if n_days < 24_000 else np.int64,
    )
    for ci in steps:  # a handful of customer chunks
        crng = np.random.default_rng([int(seed), 7919, ci])
        sink.append(_chunk(crng, bounds[ci], bounds[ci + 1], cat, cust, cal, promo, camp, lam, salt))
    del promo, cust
    fact = _assemble(sink, start)
    del sink

    order = {name: TABLES[name].column_names for name in TABLES}
    return {
        "fact_transactions": fact,  # built in schema column order
        "dim_customer": dim_customer[order["dim_customer"]],
        "dim_product": dim_product[order["dim_product"]],
        "dim_promotion": dim_promotion[order["dim_promotion"]],
        "customer_exposure": exposure[order["customer_exposure"]],
    }
