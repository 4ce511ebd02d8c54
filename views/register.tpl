% rebase('layout.tpl', title=title)
<h2>Sign Up</h2>
% if error:
<div class="error"><strong>Error:</strong> {{error}}</div>
% end
<form action="/register" method="post">
  <dl>
    <dt><label for="username">Username:</label>
    <dd><input type="text" id="username" name="username" size="30" maxlength="100" value="{{username}}" autocomplete="username" required>
    <dt><label for="email">E-Mail:</label>
    <dd><input type="text" id="email" name="email" size="30" maxlength="254" value="{{email}}" autocomplete="email" required>
    <dt><label for="password">Password:</label>
    <dd><input type="password" id="password" name="password" size="30" autocomplete="new-password" required>
    <dt><label for="password2">Password <small>(repeat)</small>:</label>
    <dd><input type="password" id="password2" name="password2" size="30" autocomplete="new-password" required>
  </dl>
  <div class="actions"><input type="submit" value="Sign Up"></div>
</form>
