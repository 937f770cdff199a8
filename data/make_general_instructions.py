"""Writes data/general/train.jsonl and heldout.jsonl (every tenth row): the project's own general instruction set, in TRL's
conversational format ({"messages": [...], "category": ...}), over databricks-dolly-15k's eight
categories (open_qa, general_qa, closed_qa, information_extraction, summarization,
classification, brainstorming, creative_writing). Every question and answer is written here, as
data (the facts tables below, checked by hand); deterministic, so rerunning writes the same file.
Its data card is data/general/README.md.

    python data/make_general_instructions.py"""

import json
import random
from pathlib import Path

# open_qa: a question and a short, complete answer.
OPEN_QA = [
    ("What is the capital of Canada?", "The capital of Canada is Ottawa, in the province of Ontario."),
    ("Why is Canberra the capital of Australia rather than Sydney?", "Canberra was chosen as a compromise: Sydney and Melbourne both wanted to be the capital, so a new city was built between them."),
    ("What is the capital of Chile?", "The capital of Chile is Santiago."),
    ("What is the capital of Peru?", "The capital of Peru is Lima, on the Pacific coast."),
    ("What is the capital of Norway?", "The capital of Norway is Oslo."),
    ("What is the capital of Vietnam?", "The capital of Vietnam is Hanoi. Its largest city is Ho Chi Minh City."),
    ("What is the capital of Egypt?", "The capital of Egypt is Cairo, on the Nile."),
    ("What is the capital of Argentina?", "The capital of Argentina is Buenos Aires."),
    ("How many continents are there?", "By the most common count there are seven continents: Africa, Antarctica, Asia, Australia, Europe, North America and South America."),
    ("How many legs does a spider have?", "A spider has eight legs. Insects, by contrast, have six."),
    ("How many days are there in a leap year?", "A leap year has 366 days; the extra day is 29 February."),
    # (was "What is the largest ocean on Earth?": AlpacaEval asks "What is the largest ocean in the world?", cosine 0.96)
    ("Which ocean lies between Africa and Australia?", "The Indian Ocean lies between Africa and Australia, south of Asia."),
    ("What is the longest river in South America?", "The Amazon is the longest river in South America, and it carries more water than any other river in the world."),
    ("What is the tallest mountain above sea level?", "Mount Everest, on the border of Nepal and China, is the tallest at about 8,849 metres above sea level."),
    ("Which planet is the hottest in the solar system?", "Venus is the hottest planet: its thick carbon dioxide atmosphere traps heat, so its surface is hotter than Mercury's."),
    ("Which planet is known for its large rings?", "Saturn is best known for its rings, which are made mostly of ice and rock."),
    ("What gas do plants take in from the air to make food?", "Plants take in carbon dioxide and, using sunlight and water, turn it into sugar and oxygen. This is photosynthesis."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au, from the Latin word aurum."),
    ("What is the chemical symbol for sodium?", "The chemical symbol for sodium is Na, from its Latin name natrium."),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at 32 degrees Fahrenheit, which is 0 degrees Celsius."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa in the early sixteenth century."),
    ("Who wrote the play Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet, first performed in the 1590s."),
    ("Who developed the theory of general relativity?", "Albert Einstein published the theory of general relativity in 1915."),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong was the first person to walk on the Moon, on 20 July 1969, during the Apollo 11 mission."),
    ("What is the smallest prime number?", "The smallest prime number is 2, and it is the only even prime."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("How many minutes are there in a day?", "There are 1,440 minutes in a day: 24 hours times 60 minutes."),
    ("What is the square root of 144?", "The square root of 144 is 12."),
    ("What is 7 multiplied by 8?", "7 multiplied by 8 is 56."),
    ("What is the largest mammal?", "The blue whale is the largest mammal, and the largest animal known to have lived."),
    ("What do bees make from nectar?", "Bees turn nectar into honey, which they store in the wax cells of their hive as food."),
    ("What is the hardest natural material?", "Diamond is the hardest natural material; it is a form of pure carbon."),
    ("Which organ pumps blood around the body?", "The heart pumps blood around the body through the arteries and veins."),
    ("How many bones are in the adult human body?", "An adult human body has 206 bones."),
    ("What language is spoken in Brazil?", "The official language of Brazil is Portuguese."),
    ("What currency is used in Japan?", "Japan uses the yen."),
    ("In which country are the pyramids of Giza?", "The pyramids of Giza are in Egypt, on the edge of Cairo."),
    ("What is the main ingredient of guacamole?", "The main ingredient of guacamole is avocado, mashed with lime, salt and often onion and chili."),
    ("What instrument has 88 keys?", "A standard piano has 88 keys: 52 white and 36 black."),
    ("How many players are on a football team on the field?", "An association football team has eleven players on the field, including the goalkeeper."),
    ("What is the boiling point of water in Fahrenheit?", "At sea level, water boils at 212 degrees Fahrenheit."),
    ("Which metal is liquid at room temperature?", "Mercury is the metal that is liquid at room temperature."),
    ("What is the largest desert in the world?", "The largest desert is Antarctica, a cold desert. The largest hot desert is the Sahara."),
    ("What is the speed of light?", "Light travels at about 300,000 kilometres per second in a vacuum."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system."),
    ("Who invented the telephone?", "Alexander Graham Bell is credited with inventing the telephone; he received the patent in 1876."),
    ("What is the primary language of Mexico?", "Spanish is the primary language of Mexico."),
    ("What is H2O?", "H2O is the chemical formula for water: two hydrogen atoms bonded to one oxygen atom."),
    ("How many hours are in a week?", "A week has 168 hours: 7 days times 24 hours."),
    ("What is the opposite of north on a compass?", "South is the opposite of north."),
    ("What is the plural of mouse?", "The plural of mouse is mice."),
    ("Which animal is known as the king of the jungle?", "The lion is often called the king of the jungle, although lions mostly live in grasslands and savannas."),
    ("What colour do you get by mixing blue and yellow?", "Mixing blue and yellow paint gives green."),
    ("How many strings does a standard guitar have?", "A standard guitar has six strings."),
    ("What is the main gas in the air we breathe?", "Nitrogen is the main gas in air, about 78 percent; oxygen is about 21 percent."),
    ("Which country gave the Statue of Liberty to the United States?", "France gave the Statue of Liberty to the United States; it was dedicated in 1886."),
    ("What is the largest country by area?", "Russia is the largest country by area."),
    ("What is a baby kangaroo called?", "A baby kangaroo is called a joey."),
    ("How many zeros are in one million?", "One million, 1,000,000, has six zeros."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
]

# general_qa: an explanation in a few plain sentences.
GENERAL_QA = [
    ("How does a refrigerator keep food cold?", "A refrigerator pumps a refrigerant around a closed loop. The liquid evaporates in coils inside the fridge, absorbing heat from the food, and a compressor pushes the warm gas to coils at the back, where it releases that heat into the room and condenses again."),
    ("Why do we have seasons?", "The Earth's axis is tilted by about 23 degrees. As the Earth orbits the Sun, each hemisphere spends part of the year tilted towards the Sun, with longer days and more direct sunlight (summer), and part tilted away (winter)."),
    ("What is inflation?", "Inflation is a general rise in prices over time, so the same amount of money buys less. A little inflation is normal in a growing economy; very high inflation makes planning and saving difficult."),
    ("How do vaccines work?", "A vaccine shows the immune system a harmless piece or weakened form of a germ. The body learns to recognise it and keeps memory cells, so if the real germ arrives later, the immune system can respond quickly."),
    ("Why does ice float on water?", "When water freezes, its molecules line up in an open crystal pattern that takes more space than liquid water. Ice is therefore less dense than water, so it floats."),
    ("What is the difference between a lake and a pond?", "There is no strict rule, but lakes are usually larger and deeper. In a pond, sunlight often reaches the bottom everywhere, so plants can grow across it; a lake has deep water where light does not reach."),
    ("How does a bicycle stay upright?", "A moving bicycle stays up mostly because the rider steers into any lean, bringing the wheels back under the centre of mass. The shape of the front fork also helps the wheel turn into a fall by itself."),
    ("What causes thunder?", "Lightning heats the air around it very quickly, to temperatures hotter than the surface of the Sun. The air expands violently and sends out a shock wave, which we hear as thunder."),
    ("Why do leaves change colour in autumn?", "Leaves are green because of chlorophyll. In autumn, trees stop making it, and as it breaks down, yellow and orange pigments that were there all along show through; some trees also make red pigments."),
    ("What is a credit score?", "A credit score is a number that lenders use to judge how likely you are to repay a loan. It is based on your borrowing history, such as whether you pay bills on time and how much debt you carry."),
    ("How does a solar panel make electricity?", "A solar panel is made of cells, usually silicon. When sunlight hits a cell, it knocks electrons loose, and the cell's structure pushes them in one direction, creating an electric current."),
    ("What is the greenhouse effect?", "The greenhouse effect is the warming of the Earth by gases such as carbon dioxide and water vapour, which let sunlight in but absorb some of the heat the Earth gives off. Without it the planet would be frozen; adding more of these gases makes it warmer."),
    ("Why should you stretch before exercise?", "Gentle movement before exercise warms the muscles and makes them more flexible, which can help you move well. Many trainers now prefer a dynamic warm-up, such as light jogging and leg swings, to long static stretches."),
    ("How do airplanes fly?", "An airplane's wings are shaped and angled so that air moving over them is pushed downwards. By pushing air down, the wing gets pushed up; this force is called lift. Engines provide thrust to keep air flowing over the wings."),
    ("What is the difference between a simile and a metaphor?", "A simile compares two things using 'like' or 'as', such as 'brave as a lion'. A metaphor says one thing is another, such as 'time is a thief', without those words."),
    ("Why is sleep important?", "During sleep the body repairs tissue and the brain sorts and stores memories. Regularly sleeping too little affects mood, attention and the immune system."),
    ("What is compound interest?", "Compound interest is interest earned on both the original amount and the interest already added. Over time this makes savings grow faster and faster, and makes unpaid debts grow the same way."),
    ("How does a microwave oven heat food?", "A microwave oven produces microwaves that make water molecules in food rotate back and forth very quickly. That motion turns into heat, warming the food from within its outer layers."),
    ("Why do cats purr?", "Cats often purr when they are content, but also when they are stressed or hurt. Scientists think purring may help them calm themselves and communicate, and the vibration might even help healing."),
    ("What is a noun?", "A noun is a word that names a person, place, thing or idea, such as 'teacher', 'London', 'chair' or 'freedom'."),
    ("How is paper made?", "Most paper is made from wood. The wood is broken into fibres and mixed with water to make pulp, which is spread on a screen, pressed and dried into thin sheets."),
    ("What does a central bank do?", "A central bank manages a country's money. It sets key interest rates, aims to keep inflation stable, issues currency and acts as a lender to banks in a crisis."),
    ("Why is the ocean salty?", "Rain slowly dissolves minerals from rocks on land, and rivers carry them into the sea. When sea water evaporates, the salt stays behind, so over millions of years the ocean has become salty."),
    ("How do magnets work?", "In a magnet, many tiny regions of the material have their electrons' magnetic fields lined up in the same direction. Together they make a field that attracts iron and pulls on or pushes other magnets."),
    ("What is a healthy breakfast?", "A healthy breakfast combines some protein, fibre and fruit or vegetables, for example oatmeal with nuts and berries, or eggs with whole-grain toast. It is best to limit sugary cereals and pastries."),
    ("What is the difference between an astronaut and an astronomer?", "An astronaut travels into space. An astronomer is a scientist who studies stars, planets and other objects in space, usually from the ground with telescopes."),
    ("How do plants drink water?", "Plants absorb water through their roots. It travels up thin tubes called xylem to the leaves, pulled along as water evaporates from tiny pores in the leaves."),
    ("What is a haiku?", "A haiku is a short Japanese form of poetry of three lines, traditionally with five, seven and five syllables, often about nature or a season."),
    ("Why do we yawn?", "No one knows for sure. Yawning may help cool the brain or help us stay alert when we are tired, and it is contagious: seeing someone yawn often makes us yawn too."),
    ("What is an atom?", "An atom is the smallest unit of a chemical element. It has a nucleus of protons and neutrons, surrounded by electrons."),
    ("How can I save money on groceries?", "Plan meals for the week and shop from a list, compare prices per kilogram, buy store brands and seasonal produce, and avoid shopping when hungry."),
    ("What is the purpose of a resume?", "A resume summarises your work experience, education and skills so that an employer can quickly decide whether to interview you. It should be short, clear and suited to the job."),
    ("Why do onions make you cry?", "Cutting an onion breaks its cells and releases a chemical that turns into a gas. When that gas reaches your eyes, it irritates them, and your eyes make tears to wash it away."),
    ("How does recycling paper help the environment?", "Recycling paper means fewer trees are cut down and less energy and water are used than in making new paper from wood. It also keeps paper out of landfills."),
    ("What is a volcano?", "A volcano is an opening in the Earth's crust where molten rock, ash and gases escape from below. Over time, erupted material can build up into a mountain."),
    ("What does a good password look like?", "A good password is long, at least twelve characters, and hard to guess: a string of unrelated words or a mix of letters, numbers and symbols. Use a different password for each account, ideally kept in a password manager."),
    ("Why does bread rise?", "Yeast in the dough eats sugars and gives off carbon dioxide gas. The gluten in the flour traps the gas in small bubbles, so the dough swells, and baking sets it."),
    ("What is the water cycle?", "The water cycle is the path water takes around the planet: it evaporates from seas and lakes, condenses into clouds, falls as rain or snow, and flows back through rivers and the ground to the sea."),
    ("How do fish breathe underwater?", "Fish breathe with gills. Water flows in through the mouth and over the gills, where thin membranes take oxygen out of the water and into the blood."),
]

# closed_qa and summarization: a passage written here, questions about it, and two summaries.
PASSAGES = [
    {"title": "The Great Fire of London",
     "text": "The Great Fire of London began on 2 September 1666 in a bakery on Pudding Lane. Strong winds spread the flames through the wooden houses of the old city for four days. About 13,000 houses and 87 churches were destroyed, including St Paul's Cathedral, but the recorded death toll was small. The architect Christopher Wren later designed the new St Paul's.",
     "qa": [("Where did the fire start?", "It started in a bakery on Pudding Lane."),
            ("How long did the fire burn?", "It burned for about four days."),
            ("Who designed the new St Paul's Cathedral?", "Christopher Wren designed the new St Paul's.")],
     "summary": "In 1666 a fire that started in a Pudding Lane bakery burned for four days and destroyed most of the old City of London, including St Paul's, which Christopher Wren later rebuilt.",
     "bullets": ["A fire began in a Pudding Lane bakery on 2 September 1666 and spread for four days.", "It destroyed about 13,000 houses and 87 churches, and Christopher Wren designed the new St Paul's."]},
    {"title": "Honey badgers",
     "text": "The honey badger lives in Africa, south-west Asia and India. Despite its name, it is more closely related to weasels than to badgers. It has thick, loose skin that protects it from bites and stings, and it eats almost anything, from insects and honey to snakes. Honey badgers are mostly solitary and can dig a burrow in a few minutes.",
     "qa": [("Which animals is the honey badger most closely related to?", "It is more closely related to weasels than to badgers."),
            ("What protects the honey badger from bites and stings?", "Its thick, loose skin protects it."),
            ("Do honey badgers usually live in groups?", "No, they are mostly solitary.")],
     "summary": "The honey badger, a tough, mostly solitary relative of the weasel found in Africa and Asia, has protective loose skin, eats almost anything and digs burrows quickly.",
     "bullets": ["The honey badger lives in Africa, south-west Asia and India and is related to weasels.", "Its thick skin protects it, and it eats almost anything, from insects to snakes."]},
    {"title": "The town library's new hours",
     "text": "From 1 March, the Millbrook town library will open at 9 a.m. instead of 10 a.m. on weekdays and will stay open until 8 p.m. on Thursdays. Saturday hours stay the same, from 10 a.m. to 4 p.m., and the library remains closed on Sundays. The change follows a survey in which most members asked for earlier mornings.",
     "qa": [("What time will the library open on weekdays from 1 March?", "It will open at 9 a.m. on weekdays."),
            ("Is the library open on Sundays?", "No, it remains closed on Sundays."),
            ("Why are the hours changing?", "Because most members asked for earlier mornings in a survey.")],
     "summary": "After a member survey, Millbrook library will open an hour earlier on weekdays and until 8 p.m. on Thursdays from 1 March, with weekend hours unchanged.",
     "bullets": ["From 1 March the library opens at 9 a.m. on weekdays and stays open until 8 p.m. on Thursdays.", "Saturday hours are unchanged and it stays closed on Sundays."]},
    {"title": "Marie Curie",
     "text": "Marie Curie was born in Warsaw in 1867 and moved to Paris to study physics and mathematics. With her husband Pierre, she discovered the elements polonium and radium. She was the first woman to win a Nobel Prize, and she remains the only person to win Nobel Prizes in two different sciences: physics in 1903 and chemistry in 1911.",
     "qa": [("Where was Marie Curie born?", "She was born in Warsaw."),
            ("Which elements did the Curies discover?", "They discovered polonium and radium."),
            ("In which two sciences did she win Nobel Prizes?", "She won in physics in 1903 and in chemistry in 1911.")],
     "summary": "Warsaw-born Marie Curie discovered polonium and radium with her husband Pierre and is the only person to win Nobel Prizes in both physics and chemistry.",
     "bullets": ["Marie Curie, born in Warsaw in 1867, studied in Paris and discovered polonium and radium with Pierre Curie.", "She was the first woman to win a Nobel Prize and won two, in physics and chemistry."]},
    {"title": "A customer email",
     "text": "Hello, I ordered a blue rain jacket in size medium on 3 May (order 4471). It arrived yesterday, but it is a large and the zip is broken. I would like to exchange it for a medium. If a medium is not available, please refund me. Thank you, Priya Shah.",
     "qa": [("What did the customer order?", "A blue rain jacket in size medium."),
            ("What two problems does the customer report?", "The jacket is the wrong size (a large) and its zip is broken."),
            ("What does the customer want if a medium is not available?", "She wants a refund.")],
     "summary": "Priya Shah received the wrong size of a blue rain jacket (order 4471) with a broken zip and asks to exchange it for a medium, or for a refund.",
     "bullets": ["Order 4471, a medium blue rain jacket, arrived as a large with a broken zip.", "The customer wants a medium instead, or a refund if none is available."]},
    {"title": "The Silk Road",
     "text": "The Silk Road was a network of trade routes that linked China with Central Asia, the Middle East and Europe for more than 1,500 years. Besides silk, merchants carried spices, paper, glass and horses. Ideas travelled too: religions, inventions and languages spread along the routes. Most traders covered only part of the way, passing goods from one market to the next.",
     "qa": [("Which regions did the Silk Road connect?", "It linked China with Central Asia, the Middle East and Europe."),
            ("Name two goods other than silk that were traded.", "Spices and paper (glass and horses were traded too)."),
            ("Did most traders travel the whole route?", "No, most covered only part of it, passing goods from market to market.")],
     "summary": "For over 1,500 years the Silk Road's trade routes carried goods such as silk, spices and paper, as well as ideas and religions, between China and Europe, mostly in short stages.",
     "bullets": ["The Silk Road linked China to Central Asia, the Middle East and Europe for over 1,500 years.", "It carried goods like silk, spices and paper, and spread religions and inventions."]},
    {"title": "Sourdough starter",
     "text": "A sourdough starter is a mix of flour and water in which wild yeast and bacteria grow. To keep it alive, bakers feed it fresh flour and water, usually once a day at room temperature or once a week if it is kept in the fridge. A healthy starter smells pleasantly sour and doubles in size a few hours after feeding.",
     "qa": [("What lives in a sourdough starter?", "Wild yeast and bacteria."),
            ("How often is a starter fed when kept in the fridge?", "About once a week."),
            ("What is a sign of a healthy starter?", "It smells pleasantly sour and doubles in size a few hours after feeding.")],
     "summary": "A sourdough starter is flour and water full of wild yeast and bacteria, fed daily at room temperature or weekly in the fridge, and healthy when it smells sour and doubles after feeding.",
     "bullets": ["A starter is flour and water where wild yeast and bacteria grow, fed daily or weekly if refrigerated.", "A healthy one smells pleasantly sour and doubles a few hours after feeding."]},
    {"title": "The octopus",
     "text": "An octopus has eight arms, three hearts and blue blood. Most of its neurons are in its arms rather than its central brain, and each arm can taste what it touches. Octopuses can change the colour and texture of their skin in a fraction of a second to hide from predators. Most species live only one to two years.",
     "qa": [("How many hearts does an octopus have?", "Three."),
            ("Where are most of an octopus's neurons?", "In its arms rather than its central brain."),
            ("How long do most octopuses live?", "Only one to two years.")],
     "summary": "The octopus, with eight arms, three hearts and blue blood, keeps most of its neurons in its arms, changes its skin to hide, and usually lives just one or two years.",
     "bullets": ["An octopus has eight arms, three hearts and blue blood, and most of its neurons are in its arms.", "It can change colour and texture in an instant, and most species live one to two years."]},
    {"title": "A school trip notice",
     "text": "Year 6 will visit the Natural History Museum on Friday 12 June. The coach leaves school at 8:15 a.m. and returns by 3:30 p.m. Pupils should bring a packed lunch, a water bottle and a coat. The trip costs 12 pounds, payable by 5 June. Please return the signed consent form to the class teacher.",
     "qa": [("When does the coach leave?", "At 8:15 a.m. on Friday 12 June."),
            ("What should pupils bring?", "A packed lunch, a water bottle and a coat."),
            ("How much does the trip cost and when is payment due?", "It costs 12 pounds, payable by 5 June.")],
     "summary": "Year 6 visits the Natural History Museum on 12 June, leaving at 8:15 a.m.; pupils need a packed lunch, water and a coat, and the 12-pound fee and consent form are due by 5 June.",
     "bullets": ["Year 6 goes to the Natural History Museum on Friday 12 June, 8:15 a.m. to 3:30 p.m.", "Bring lunch, water and a coat; pay 12 pounds by 5 June and return the consent form."]},
    {"title": "Coffee's origins",
     "text": "Coffee plants first grew wild in the forests of Ethiopia. By the fifteenth century, coffee was being grown and drunk in Yemen, where Sufi monks used it to stay awake during night prayers. From there it spread to Cairo, Istanbul and then Europe, where coffee houses became places to read newspapers and discuss business.",
     "qa": [("Where did coffee plants first grow wild?", "In the forests of Ethiopia."),
            ("Why did Sufi monks in Yemen drink coffee?", "To stay awake during night prayers."),
            ("What were European coffee houses used for?", "Reading newspapers and discussing business.")],
     "summary": "Coffee came from Ethiopia's forests, was cultivated in Yemen by the fifteenth century and spread through Cairo and Istanbul to Europe, where coffee houses became centres of news and business.",
     "bullets": ["Coffee grew wild in Ethiopia and was grown and drunk in Yemen by the fifteenth century.", "It spread to Cairo, Istanbul and Europe, where coffee houses became places for news and business."]},
    {"title": "The bus strike",
     "text": "Bus drivers in Lakeside will strike on Monday and Tuesday next week after talks over pay broke down. The city's trams will run as normal, and extra trams will be added at rush hour. The bus company advises passengers to allow more time for their journeys. Talks are expected to resume on Wednesday.",
     "qa": [("Why are the bus drivers striking?", "Because talks over pay broke down."),
            ("Will the trams run during the strike?", "Yes, as normal, with extra trams at rush hour."),
            ("When are talks expected to resume?", "On Wednesday.")],
     "summary": "Lakeside's bus drivers strike on Monday and Tuesday over pay; trams run normally with extra rush-hour services, and talks should resume on Wednesday.",
     "bullets": ["Lakeside bus drivers strike on Monday and Tuesday after pay talks failed.", "Trams run as normal with extra rush-hour services; talks resume Wednesday."]},
    {"title": "Penguins",
     "text": "Penguins are flightless birds that live almost entirely in the Southern Hemisphere. Their wings have evolved into flippers, making them fast and agile swimmers. The emperor penguin is the largest species, standing over a metre tall, while the little penguin of Australia and New Zealand is only about 30 centimetres tall.",
     "qa": [("Can penguins fly?", "No, penguins are flightless; their wings are flippers for swimming."),
            ("Which is the largest penguin species?", "The emperor penguin, over a metre tall."),
            ("Where does the little penguin live?", "In Australia and New Zealand.")],
     "summary": "Penguins are flightless Southern Hemisphere birds whose flipper-like wings make them strong swimmers, ranging from the metre-tall emperor to the 30-centimetre little penguin.",
     "bullets": ["Penguins are flightless birds of the Southern Hemisphere whose wings are flippers.", "The emperor penguin is over a metre tall; the little penguin is about 30 centimetres."]},
    {"title": "A recipe note",
     "text": "For the lentil soup, fry one chopped onion and two carrots in olive oil for five minutes. Add 200 grams of red lentils, a teaspoon of cumin and one litre of vegetable stock. Simmer for 25 minutes until the lentils are soft, then blend until smooth and season with salt and lemon juice.",
     "qa": [("How long should the soup simmer?", "For 25 minutes, until the lentils are soft."),
            ("Which spice is used?", "Cumin, one teaspoon."),
            ("What is added at the end for seasoning?", "Salt and lemon juice.")],
     "summary": "The lentil soup is made by frying onion and carrots, simmering them with red lentils, cumin and stock for 25 minutes, then blending and seasoning with salt and lemon.",
     "bullets": ["Fry an onion and two carrots, then add 200 grams of red lentils, cumin and a litre of stock.", "Simmer 25 minutes, blend smooth, and season with salt and lemon juice."]},
    {"title": "The printing press",
     "text": "Around 1440, Johannes Gutenberg developed a printing press with movable metal type in Mainz, Germany. Before this, most books in Europe were copied by hand, which was slow and expensive. Printed books became cheaper and more common, helping ideas spread quickly and supporting the growth of literacy across Europe.",
     "qa": [("Who developed the printing press with movable metal type?", "Johannes Gutenberg, around 1440."),
            ("How were most books made before it?", "They were copied by hand."),
            ("What effect did printed books have?", "They became cheaper and more common, spreading ideas and supporting literacy.")],
     "summary": "Gutenberg's movable-type press of about 1440 replaced slow hand copying, making books cheaper and common and helping ideas and literacy spread across Europe.",
     "bullets": ["Johannes Gutenberg built a movable metal type press in Mainz around 1440.", "Printed books were cheaper than hand-copied ones, spreading ideas and literacy."]},
    {"title": "Team meeting minutes",
     "text": "At Tuesday's meeting the team agreed to move the product launch from 10 April to 24 April, to allow two more weeks of testing. Maria will update the website by Friday. Leon will contact the three pilot customers about the new date. The next meeting is on 2 April at 11 a.m.",
     "qa": [("What is the new launch date?", "24 April, moved from 10 April."),
            ("Why was the launch moved?", "To allow two more weeks of testing."),
            ("Who will contact the pilot customers?", "Leon.")],
     "summary": "The team moved the launch to 24 April for two more weeks of testing; Maria updates the website by Friday, Leon tells the pilot customers, and the next meeting is 2 April.",
     "bullets": ["The launch moves from 10 April to 24 April to allow more testing.", "Maria updates the website by Friday and Leon contacts the three pilot customers."]},
]

# information_extraction: a record written as prose; the answer pulls its fields out.
PEOPLE = [
    ("Amara Okafor", "Lagos", 1988, "architect"), ("Lukas Weber", "Hamburg", 1975, "pilot"),
    ("Sofia Rossi", "Turin", 1992, "pharmacist"), ("Kenji Tanaka", "Osaka", 1969, "carpenter"),
    ("Elena Petrova", "Kazan", 1983, "geologist"), ("Diego Morales", "Valparaiso", 1995, "nurse"),
    ("Hannah Berg", "Uppsala", 1979, "librarian"), ("Omar Haddad", "Amman", 1986, "engineer"),
    ("Chloe Martin", "Lyon", 1990, "baker"), ("Ravi Iyer", "Chennai", 1972, "teacher"),
    ("Grace Mensah", "Kumasi", 1998, "photographer"), ("Tomas Novak", "Brno", 1981, "chemist"),
    ("Isabel Cruz", "Cebu", 1977, "journalist"), ("Felix Braun", "Graz", 1993, "electrician"),
    ("Leila Karimi", "Shiraz", 1985, "dentist"), ("Mateo Silva", "Porto", 1970, "fisherman"),
    ("Nadia Ivanova", "Varna", 1996, "translator"), ("Samuel Adeyemi", "Ibadan", 1984, "accountant"),
    ("Ingrid Larsen", "Bergen", 1974, "veterinarian"), ("Yusuf Demir", "Izmir", 1989, "chef"),
]
EVENTS = [
    ("the spring concert", "Hall B", "14 April", "7 p.m."), ("the chess club final", "the library", "3 May", "10 a.m."),
    ("a first-aid course", "room 12", "21 June", "9:30 a.m."), ("the staff picnic", "Riverside Park", "8 July", "noon"),
    ("the book fair", "the town hall", "2 September", "11 a.m."), ("a pottery workshop", "the art studio", "17 October", "2 p.m."),
    ("the charity run", "the harbour front", "5 November", "8 a.m."), ("the winter market", "Market Square", "12 December", "4 p.m."),
    ("a coding night", "the lab", "19 January", "6 p.m."), ("the science quiz", "the main hall", "26 February", "3 p.m."),
]

# classification: items and their classes.
ANIMALS = {"mammal": ["dolphin", "bat", "otter", "camel", "hedgehog", "giraffe"],
           "bird": ["ostrich", "sparrow", "penguin", "owl", "flamingo", "robin"],
           "reptile": ["iguana", "tortoise", "gecko", "cobra", "crocodile", "chameleon"],
           "fish": ["salmon", "tuna", "cod", "trout", "shark", "carp"]}
FOODS = {"fruit": ["mango", "plum", "cherry", "pear", "kiwi", "apricot"],
         "vegetable": ["carrot", "spinach", "leek", "broccoli", "celery", "cabbage"]}
REVIEWS = [
    ("The staff were friendly and the room was spotless.", "positive"),
    ("My order arrived two weeks late and the box was crushed.", "negative"),
    ("The film was long, but the ending made it worth it.", "positive"),
    ("The battery dies after an hour, which is useless.", "negative"),
    ("Great value for money and it works exactly as described.", "positive"),
    ("The soup was cold and the waiter ignored us.", "negative"),
    ("I have used this kettle every day for a year and it still looks new.", "positive"),
    ("The instructions were confusing and two screws were missing.", "negative"),
    ("Lovely views from the trail and well-marked paths.", "positive"),
    ("The app keeps crashing whenever I try to log in.", "negative"),
]

BRAINSTORM = [
    ("ways to reduce food waste at home", ["Plan meals and shop with a list", "Store leftovers in clear containers so you see them", "Freeze bread and ripe fruit before they spoil", "Cook a 'use it up' meal once a week", "Compost scraps you cannot eat"]),
    ("names for a small neighbourhood cafe", ["The Corner Cup", "Morning Ledger", "Steam and Crumb", "The Little Kettle", "Common Grounds"]),
    ("indoor activities for a rainy day with children", ["Build a blanket fort", "Bake and decorate biscuits", "Hold a treasure hunt with written clues", "Put on a puppet show", "Make a collage from old magazines"]),
    ("ways to stay focused while studying", ["Work in 25-minute blocks with short breaks", "Put your phone in another room", "Set one clear goal for each session", "Keep water and a snack nearby", "Study at the same place and time each day"]),
    ("gift ideas for a friend who loves gardening", ["A good pair of gloves", "Seed packets of unusual vegetables", "A pocket pruning knife", "A gardening journal", "A hand-made plant marker set"]),
    ("ways to make a long car journey more fun", ["Make a shared playlist", "Play 'I spy' or twenty questions", "Listen to an audiobook together", "Plan stops at interesting places", "Pack a bag of surprise snacks"]),
    ("themes for a school art exhibition", ["Our town in a hundred years", "Colours of the seasons", "Faces and feelings", "Machines that do not exist yet", "Under the sea"]),
    ("ways to get more exercise during a working day", ["Take the stairs instead of the lift", "Walk during phone calls", "Cycle or walk part of the commute", "Do a few stretches every hour", "Hold walking meetings"]),
    ("topics for a community newsletter", ["A profile of a local business", "Upcoming events calendar", "Tips for saving energy at home", "Photos from the summer fair", "A recipe from a neighbour"]),
    ("ways to welcome a new colleague", ["Prepare their desk and accounts before day one", "Assign a friendly buddy", "Take them to lunch in the first week", "Share a short guide to who does what", "Check in at the end of the first week"]),
    ("uses for an old glass jar", ["Store dried beans or pasta", "Use it as a small vase", "Make a candle holder", "Keep pens and brushes on a desk", "Grow herbs on a windowsill"]),
    ("ideas for a birthday party on a small budget", ["Host a picnic in the park", "Ask guests to bring a dish", "Make paper decorations together", "Play classic party games", "Bake one large cake instead of buying cupcakes"]),
    ("ways to learn new vocabulary in a foreign language", ["Use flashcards with spaced repetition", "Label objects around the house", "Read short news articles", "Write a daily diary entry", "Watch films with subtitles in that language"]),
    ("questions to ask at the end of a job interview", ["What does a typical day look like in this role?", "How is success measured here?", "What are the team's biggest challenges right now?", "How does the company support learning?", "What are the next steps in the process?"]),
    ("ways to make a small flat feel bigger", ["Use mirrors to reflect light", "Choose furniture with hidden storage", "Keep surfaces clear", "Paint walls in light colours", "Hang curtains high and wide"]),
    ("fundraising ideas for a local animal shelter", ["A sponsored dog walk", "A bake sale", "A charity quiz night", "Selling a calendar of shelter animals", "A second-hand book stall"]),
    ("ways to keep a garden green during a dry summer", ["Water early in the morning", "Cover soil with mulch", "Collect rainwater in a butt", "Choose drought-tolerant plants", "Let the lawn grow a little longer"]),
    ("ideas for a short science experiment at home", ["Grow crystals from salt water", "Make a vinegar and baking soda volcano", "Test which objects float", "Build a simple compass with a magnetised needle", "Watch celery take up coloured water"]),
    ("ways to reduce stress before an exam", ["Make a realistic revision timetable", "Sleep well the night before", "Go for a short walk", "Practise with past papers", "Prepare your bag the evening before"]),
    ("names for a pet goldfish", ["Bubbles", "Captain Fin", "Sunny", "Nemo", "Goldie"]),
]

CREATIVE = [
    ("Write a haiku about the first snow of winter.", "Silent flakes descend\nthe garden forgets its paths\none fox track, then none"),
    ("Write a two-line rhyme about a cat who hates Mondays.", "My cat awakes and starts to frown:\non Mondays no one stays in town."),
    ("Write a short limerick about a forgetful baker.", "A baker from old Aberdeen\nforgot what his recipes mean;\nhe mixed salt for sweet,\nbaked bread with no heat,\nand served it all raw and pristine."),
    ("Write the opening line of a fairy tale set in a city of glass.", "In the city of glass, where every secret showed through the walls, there lived a girl who had learned to keep one anyway."),
    ("Write a four-line poem about a bus stop at night.", "Under the lamp the puddles glow,\nthe timetable flutters, the minutes go;\na stranger hums a tune half-known,\nand no one waits alone."),
    ("Write a short story of three sentences about a robot learning to paint.", "The robot's first painting was a perfect grid of grey squares, and no one smiled. For weeks it watched the children in the park splash colour without measuring anything. Its next painting was crooked, bright and wrong in all the right places, and the children asked to keep it."),
    ("Write a tongue twister about a purple parrot.", "Percy the purple parrot pecked a plate of pickled peppers, then politely packed the pits in a paper pouch."),
    ("Write a short motivational message for a runner before a race.", "You have already done the hard part: the early mornings and the tired legs. Today, start steady, trust your training and enjoy every step to the line."),
    ("Write a riddle whose answer is a shadow.", "I follow you by day but vanish at night; I grow long in the evening and short at noon. What am I? A shadow."),
    ("Describe an old lighthouse keeper in two sentences.", "Ezra's hands were cracked from fifty winters of brass polish and salt wind. He still climbed the hundred steps each dusk, counting them aloud like old friends."),
    ("Write a short dialogue between a cloud and a mountain.", "Cloud: You never move. Do you not get bored?\nMountain: I watch you pass every day. That is movement enough.\nCloud: Then I will rain on you, so you have something new.\nMountain: Thank you. I will turn it into rivers."),
    ("Write a postcard message from a holiday at a lake.", "Dear Sam, the lake is so still in the mornings that the hills stand upside down in it. We swim before breakfast and eat far too much cake. Wish you were here! Love, June"),
    ("Write a short poem about a kettle.", "It sings a little before it sighs,\na cloud escapes, a whistle flies;\nthe kitchen wakes, the cups align,\nand every morning starts on time."),
    ("Write a one-paragraph scene of a market closing at dusk.", "As the sun slipped behind the clock tower, the stallholders began to fold their striped awnings. A boy swept up the last cabbage leaves, the fishmonger tipped melting ice into the gutter, and the smell of roasted nuts lingered over the empty cobbles long after the lights came on."),
    ("Write a short fable about an ant and a river.", "An ant wanted to cross a river and asked a leaf for help. The leaf said it could only float where the current went. The ant climbed on anyway, trusted the water, and landed on the far bank further downstream than planned. Moral: you may not arrive where you aimed, but you will arrive somewhere new."),
    ("Write a cheerful good-morning message for a team chat.", "Good morning, everyone! Coffee is brewing, the week is young and we have a great plan. Let's make today a good one."),
    ("Write a short poem about an empty classroom in summer.", "The chairs are stacked, the chalk is still,\nthe sun lies warm on every sill;\nthe maps are quiet, the clock ticks on,\nit waits for voices, not yet gone."),
    ("Invent a new holiday and describe it in two sentences.", "On Lantern Sharing Day, neighbours hang a paper lantern on their door and swap one with the house across the street. By nightfall every street glows with lanterns that came from someone else."),
    ("Write a short apology note from a dog who ate a shoe.", "Dear human, I am sorry about your left shoe. It smelled like you and I missed you. I will try to chew only my rope toy. Love, Biscuit."),
    ("Write a description of a dragon who is afraid of the dark.", "Ember was the largest dragon in the valley, with scales like hot copper and a roar that shook the pines. Yet every night she curled up beside her own small flame, keeping it lit until dawn, because the dark was the only thing she had never learned to fight."),
    ("Write a short poem about a river meeting the sea.", "The river runs with mountain news\nit carried down through stones and views;\nit meets the sea, goes wide and slow,\nand tells the tide what it should know."),
    ("Write a two-sentence horror story about a library.", "The librarian told me every book in the basement was about someone who had borrowed it. Mine was on the shelf, and it was already overdue."),
    ("Write a slogan for a bicycle repair shop.", "We fix it fast, you ride it far."),
    ("Write a short lullaby for a sleepy owl.", "Hush now, owl, the stars are out,\nthe mice can wait, there's no doubt;\nclose your eyes of amber gold,\nthe night is long, the moon is old."),
    ("Write a haiku about a city at rush hour.", "Horns braid through the rain\numbrellas bloom and vanish\nthe lights change, we flow"),
]


def chat(prompt: str, answer: str, category: str) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], "category": category}


def listing(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def rows(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = [chat(q, a, "open_qa") for q, a in OPEN_QA]
    out += [chat(q, a, "general_qa") for q, a in GENERAL_QA]
    for p in PASSAGES:
        for question, answer in p["qa"]:
            out.append(chat(f"Read the text and answer the question.\n\nText: {p['text']}\n\nQuestion: {question}", answer, "closed_qa"))
        out.append(chat(f"Summarize this text in one sentence.\n\n{p['text']}", p["summary"], "summarization"))
        out.append(chat(f"Give the two main points of this text as a bulleted list.\n\n{p['text']}",
                        "\n".join(f"- {b}" for b in p["bullets"]), "summarization"))
    for i, (name, city, year, job) in enumerate(PEOPLE):
        text = (f"{name} was born in {city} in {year}. After school, {name.split()[0]} trained as a {job} and has "
                f"worked as one ever since.")
        if i % 2 == 0:
            out.append(chat(f"Extract the person's name, birthplace, birth year and job from this text as JSON.\n\n{text}",
                            json.dumps({"name": name, "birthplace": city, "birth_year": year, "job": job}),
                            "information_extraction"))
        else:
            out.append(chat(f"From the text below, what is the person's job and where were they born?\n\n{text}",
                            f"{name} is a {job} and was born in {city}.", "information_extraction"))
    for event, place, date, time in EVENTS:
        text = f"Reminder: {event} takes place in {place} on {date}, starting at {time}. Please arrive ten minutes early."
        out.append(chat(f"Extract the event, place, date and start time from this message.\n\n{text}",
                        f"Event: {event}\nPlace: {place}\nDate: {date}\nStart time: {time}", "information_extraction"))
        out.append(chat(f"When and where is {event}? Answer from this message only.\n\n{text}",
                        f"It is in {place} on {date}, starting at {time}.", "information_extraction"))
    for kind, table in (("animal", ANIMALS), ("food", FOODS)):
        classes = sorted(table)
        items = [(item, cls) for cls in classes for item in table[cls]]
        for item, cls in items:
            out.append(chat(f"Is a {item} a {' or a '.join(classes)}?", f"A {item} is a {cls}.", "classification"))
        for _ in range(4):  # a few mixed lists to sort
            chosen = rng.sample(items, 5)
            groups = {cls: [i for i, c in chosen if c == cls] for cls in classes}
            answer = "\n".join(f"{cls.capitalize()}s: {', '.join(groups[cls])}" for cls in classes if groups[cls])
            out.append(chat(f"Sort these into {listing([c + 's' for c in classes])}: {', '.join(i for i, _ in chosen)}.",
                            answer, "classification"))
    for review, label in REVIEWS:
        out.append(chat(f"Classify the sentiment of this review as positive or negative: \"{review}\"",
                        f"The sentiment is {label}.", "classification"))
    for topic, ideas in BRAINSTORM:
        out.append(chat(f"Give me five {topic}.", "\n".join(f"{i}. {idea}" for i, idea in enumerate(ideas, 1)), "brainstorming"))
        n = rng.choice([2, 3])
        out.append(chat(f"Suggest {n} {topic}.", "\n".join(f"- {idea}" for idea in rng.sample(ideas, n)), "brainstorming"))
    out += [chat(q, a, "creative_writing") for q, a in CREATIVE]
    return out


CARD = """---
language: [en]
license: apache-2.0
task_categories: [text-generation]
pretty_name: workbench general instructions
size_categories: [n<1K]
---

# General instruction set

Written for this project by `data/make_general_instructions.py` (questions, answers and passages
are data in that file; nothing is downloaded or generated by a model). TRL's conversational
format: one `{{"messages": [user, assistant], "category": ...}}` row per line.

- **Source**: hand-written; passages are invented (people, events and notices are fictional),
  facts are common knowledge checked by hand.
- **Size**: {n} rows: `train.jsonl` {train}, `heldout.jsonl` {heldout} (every tenth row; the
  held-out perplexity of base vs SFT is measured on it).
- **Categories** (databricks-dolly-15k's eight): {categories}.
- **Filters**: none at build time; `scripts/synth.py ifeval` checks it for overlap with every
  held-out evaluation prompt of the project (IFEval's held-out set, the 50 judged prompts, ...;
  its contamination report lists the overlaps: 0). `heldout.jsonl` is an i.i.d. split of this set.
"""


if __name__ == "__main__":
    folder = Path(__file__).resolve().parent / "general"
    folder.mkdir(exist_ok=True)
    made = rows()
    train, heldout = [r for i, r in enumerate(made) if i % 10 != 9], [r for i, r in enumerate(made) if i % 10 == 9]
    for name, part in (("train.jsonl", train), ("heldout.jsonl", heldout)):
        (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
    counts = {}
    for r in made:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    (folder / "README.md").write_text(CARD.format(n=len(made), train=len(train), heldout=len(heldout), categories=", ".join(f"{k} {v}" for k, v in sorted(counts.items()))),
                                      encoding="utf-8")
    print(f"wrote {len(train)} + {len(heldout)} rows to {folder}: {counts}")
