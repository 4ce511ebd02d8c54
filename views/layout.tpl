<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{title}} | MiniTwit</title>
  <link rel="stylesheet" href="/static/style.css">
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<div class="page">
  <h1>MiniTwit</h1>
  <nav class="navigation">
  % if user:
    <a href="/">my timeline</a> |
    <a href="/public">public timeline</a> |
    <form class="inline" action="/logout" method="post"><button type="submit" class="link">sign out [{{user.username}}]</button></form>
  % else:
    <a href="/public">public timeline</a> |
    <a href="/register">sign up</a> |
    <a href="/login">sign in</a>
  % end
  </nav>
  % if flashes:
  <ul class="flashes">
    % for message in flashes:
    <li>{{message}}</li>
    % end
  </ul>
  % end
  <main class="body">
  {{!base}}
  </main>
  <footer class="footer">MiniTwit &mdash; A Bottle Application</footer>
</div>
</body>
</html>
